//! The inventory rules, run with the same bodies against SQLite and PostgreSQL.

mod common;

use std::{sync::Arc, time::Duration};

use common::{wait_until, Backend, TestDb};
use dropline::{
    model::{DropId, ErrorCode, NewDrop, ReservationId, ReservationStatus, UserId},
    server::{
        self,
        events::EventBus,
        settings::HoldTerms,
        store::{
            KeyClaim, KeyRequest, NewAccount, Progress, Reserve, Reserved, SessionId, Settlement,
            Store, StoreError, StoredResponse,
        },
    },
};

const HOLD: Duration = Duration::from_secs(60);

fn new_drop(stock: i64) -> NewDrop {
    NewDrop {
        name: "Test Runner".into(),
        price_cents: 12_000,
        total_stock: stock,
        ..NewDrop::default()
    }
    .validate()
    .unwrap()
}

/// One reserve on its own: a batch of one.
async fn reserve(
    store: &dyn Store,
    drop: DropId,
    user: UserId,
    ttl: Duration,
) -> Result<Reserved, StoreError> {
    let outcome = store
        .reserve_many(
            drop,
            &[Reserve::any(user)],
            &HoldTerms::lasting(ttl),
            &mut Progress::default(),
        )
        .await?
        .pop();
    outcome
        .expect("one answer per buyer")
        .map_err(|refusal| StoreError::Refused(refusal.code))
}

/// Reserves of a drop's only size.
fn any_size(users: &[UserId]) -> Vec<Reserve> {
    users.iter().copied().map(Reserve::any).collect()
}

fn refusal<T: std::fmt::Debug>(result: Result<T, StoreError>) -> ErrorCode {
    match result {
        Err(StoreError::Refused(code)) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn assert_invariant(store: &dyn Store, drop: DropId) {
    let audit = store.audit(drop).await.unwrap();
    assert!(
        audit.holds(),
        "available + active holds + purchases != total: {audit:?}"
    );
}

fn account(name: &str) -> NewAccount {
    NewAccount {
        name: name.into(),
        session: SessionId::random(),
        lifetime: Duration::from_secs(3600),
    }
}

async fn users(store: &Arc<dyn Store>, n: usize) -> Vec<UserId> {
    let accounts: Vec<NewAccount> = (0..n).map(|i| account(&format!("buyer {i}"))).collect();
    let users = store.sign_up_many(&accounts).await.unwrap();
    users.into_iter().map(|user| user.id).collect()
}

/// Buyers signed up together each get their own user and a live session of their own.
async fn sign_ups_together_give_each_buyer_a_user_and_a_session(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let accounts = [account("Ann"), account("Bob"), account("Ann")];
    let users = store.sign_up_many(&accounts).await.unwrap();
    let names: Vec<&str> = users.iter().map(|user| user.name.as_str()).collect();
    assert_eq!(names, ["Ann", "Bob", "Ann"]);
    assert_ne!(users[0].id, users[2].id, "a name is not an identity");
    for (account, user) in accounts.iter().zip(&users) {
        let session = store.session(account.session).await.unwrap().unwrap();
        assert_eq!((session.user, session.live), (user.id, true));
        assert_eq!(store.user(user.id).await.unwrap().as_ref(), Some(user));
    }
}

async fn five_hundred_buyers_for_twenty_units(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(20)).await.unwrap();
    let buyers = users(&store, 500).await;

    let tasks: Vec<_> = buyers
        .into_iter()
        .map(|user| {
            let store = store.clone();
            tokio::spawn(async move { reserve(&*store, drop.id, user, HOLD).await })
        })
        .collect();
    let mut held = 0;
    let mut sold_out = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => held += 1,
            Err(StoreError::Refused(ErrorCode::OutOfStock)) => sold_out += 1,
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!((held, sold_out), (20, 480));
    let audit = store.audit(drop.id).await.unwrap();
    assert_eq!(audit.available, 0);
    assert_eq!(audit.active_holds, 20);
    assert_invariant(store.as_ref(), drop.id).await;
}

async fn one_live_hold_per_buyer_even_when_clicking_fast(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(10)).await.unwrap();
    let user = users(&store, 1).await[0];

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { reserve(&*store, drop.id, user, HOLD).await })
        })
        .collect();
    let mut held = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => held += 1,
            Err(StoreError::Refused(ErrorCode::AlreadyReserved)) => {}
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!(held, 1);
    assert_eq!(store.audit(drop.id).await.unwrap().available, 9);
    assert_invariant(store.as_ref(), drop.id).await;
}

async fn only_the_holder_can_buy(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(3)).await.unwrap();
    let [holder, other] = users(&store, 2).await[..] else {
        unreachable!()
    };
    let hold = reserve(&*store, drop.id, holder, HOLD)
        .await
        .unwrap()
        .reservation;

    assert_eq!(
        refusal(store.purchase(hold.id, other).await),
        ErrorCode::NotYourReservation
    );
    assert_eq!(
        refusal(store.cancel(hold.id, other).await),
        ErrorCode::NotYourReservation
    );
    let purchase = store.purchase(hold.id, holder).await.unwrap();
    assert_eq!(purchase.price_cents, 12_000);
    assert_eq!(purchase.user_id, holder);
    // A hold buys one unit once.
    assert_eq!(
        refusal(store.purchase(hold.id, holder).await),
        ErrorCode::ReservationNotActive
    );
    assert_eq!(
        refusal(store.purchase(ReservationId(999_999), holder).await),
        ErrorCode::ReservationNotFound
    );

    let audit = store.audit(drop.id).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (2, 0, 1)
    );
    assert_invariant(store.as_ref(), drop.id).await;
}

async fn a_purchase_after_the_deadline_fails_even_before_expiry_runs(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(1)).await.unwrap();
    let user = users(&store, 1).await[0];
    // No expiry worker runs in this test: only the statement's own deadline check stands guard.
    let hold = reserve(&*store, drop.id, user, Duration::from_millis(100))
        .await
        .unwrap()
        .reservation;
    tokio::time::sleep(Duration::from_millis(250)).await;

    assert_eq!(
        refusal(store.purchase(hold.id, user).await),
        ErrorCode::ReservationExpired
    );
    let audit = store.audit(drop.id).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (0, 1, 0)
    );

    assert_eq!(store.expire_due(100).await.unwrap().len(), 1);
    let audit = store.audit(drop.id).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (1, 0, 0)
    );
    let mine = store.user_reservations(user).await.unwrap();
    assert_eq!(mine[0].status, ReservationStatus::Expired);
    assert_eq!(
        refusal(store.purchase(hold.id, user).await),
        ErrorCode::ReservationExpired
    );
}

async fn cancel_gives_the_unit_back(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(1)).await.unwrap();
    let [first, second] = users(&store, 2).await[..] else {
        unreachable!()
    };
    let hold = reserve(&*store, drop.id, first, HOLD)
        .await
        .unwrap()
        .reservation;
    assert_eq!(
        refusal(reserve(&*store, drop.id, second, HOLD).await),
        ErrorCode::OutOfStock
    );

    let cancelled = store.cancel(hold.id, first).await.unwrap();
    assert_eq!(cancelled.reservation.status, ReservationStatus::Cancelled);
    assert_eq!(cancelled.drop.available_stock, 1);
    assert!(cancelled.drop.version > drop.version);
    assert_eq!(
        refusal(store.cancel(hold.id, first).await),
        ErrorCode::ReservationNotActive
    );
    assert_eq!(
        refusal(store.purchase(hold.id, first).await),
        ErrorCode::ReservationNotActive
    );

    // The unit is on sale again.
    reserve(&*store, drop.id, second, HOLD).await.unwrap();
    assert_invariant(store.as_ref(), drop.id).await;
}

async fn refusals_name_their_reason(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let user = users(&store, 1).await[0];
    assert_eq!(
        refusal(reserve(&*store, DropId(424_242), user, HOLD).await),
        ErrorCode::DropNotFound
    );

    let later = NewDrop {
        starts_at: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..new_drop(5)
    };
    let later = store.create_drop(&later).await.unwrap();
    assert_eq!(
        refusal(reserve(&*store, later.id, user, HOLD).await),
        ErrorCode::NotStarted
    );

    let drop = store.create_drop(&new_drop(5)).await.unwrap();
    let hold = reserve(&*store, drop.id, user, HOLD)
        .await
        .unwrap()
        .reservation;
    assert_eq!(
        refusal(reserve(&*store, drop.id, user, HOLD).await),
        ErrorCode::AlreadyReserved
    );
    store.purchase(hold.id, user).await.unwrap();
    // max_per_user defaults to one.
    assert_eq!(
        refusal(reserve(&*store, drop.id, user, HOLD).await),
        ErrorCode::LimitReached
    );
    // A session whose user no longer exists cannot hold anything.
    assert_eq!(
        refusal(reserve(&*store, drop.id, UserId(777_777), HOLD).await),
        ErrorCode::Unauthenticated
    );
    assert_invariant(store.as_ref(), drop.id).await;
    assert_invariant(store.as_ref(), later.id).await;
}

async fn the_feed_shows_the_three_newest_buyers(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(10)).await.unwrap();
    for i in 0..5 {
        let user = store
            .sign_up_many(&[account(&format!("buyer {i}"))])
            .await
            .unwrap()[0]
            .id;
        let hold = reserve(&*store, drop.id, user, HOLD)
            .await
            .unwrap()
            .reservation;
        store.purchase(hold.id, user).await.unwrap();
        // Distinct purchase times, so "newest" is well defined.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let names =
        |p: &[dropline::model::Purchaser]| p.iter().map(|p| p.name.clone()).collect::<Vec<_>>();
    let expected = vec!["buyer 4", "buyer 3", "buyer 2"];
    let listed = store.list_drops().await.unwrap();
    assert_eq!(names(&listed[0].recent_purchasers), expected);
    assert_eq!(
        names(
            &store
                .get_drop(drop.id)
                .await
                .unwrap()
                .unwrap()
                .recent_purchasers
        ),
        expected
    );
    assert_eq!(listed[0].available_stock, 5);
    assert_invariant(store.as_ref(), drop.id).await;
}

async fn mixed_concurrent_traffic_keeps_every_unit_accounted_for(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(30)).await.unwrap();
    let buyers = users(&store, 120).await;

    let tasks: Vec<_> = buyers
        .into_iter()
        .enumerate()
        .map(|(i, user)| {
            let store = store.clone();
            tokio::spawn(async move {
                let ttl = if i % 4 == 3 {
                    Duration::from_millis(30)
                } else {
                    HOLD
                };
                let Ok(reserved) = reserve(&*store, drop.id, user, ttl).await else {
                    return;
                };
                let hold = reserved.reservation.id;
                match i % 4 {
                    0 => drop_result(store.purchase(hold, user).await),
                    1 => drop_result(store.cancel(hold, user).await),
                    2 => {}
                    _ => {
                        tokio::time::sleep(Duration::from_millis(40)).await;
                        drop_result(store.expire_due(50).await);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    store.expire_due(1000).await.unwrap();
    let audit = store.audit(drop.id).await.unwrap();
    assert!(audit.purchases > 0, "{audit:?}");
    assert_invariant(store.as_ref(), drop.id).await;
}

fn drop_result<T>(result: Result<T, StoreError>) {
    if let Err(error) = result {
        // Refusals are expected under contention; database errors are not.
        assert!(
            matches!(error, StoreError::Refused(_)),
            "unexpected error: {error:?}"
        );
    }
}

async fn the_worker_returns_a_unit_at_its_deadline(backend: Backend) {
    let db = TestDb::new(backend).await;
    let settings = dropline::server::settings::Settings {
        reservation_ttl_seconds: 1,
        // Far beyond the test: only the deadline wake-up can return the unit in time.
        expiry_sweep_ms: 600_000,
        ..db.settings()
    };
    let state = server::start(&settings).await.unwrap();
    let inventory = state.inventory.clone();
    let drop = inventory.create_drop(new_drop(1)).await.unwrap();
    let user = state.sessions.sign_up("Sam").await.unwrap().0.id;
    inventory
        .reserve(drop.id, Reserve::any(user))
        .await
        .unwrap();
    assert_eq!(inventory.drop(drop.id).await.unwrap().available_stock, 0);

    let returned = wait_until(Duration::from_secs(10), || async {
        inventory.drop(drop.id).await.unwrap().available_stock == 1
    })
    .await;
    assert!(returned, "the held unit never came back");
    let mine = inventory.user_reservations(user).await.unwrap();
    assert_eq!(mine[0].status, ReservationStatus::Expired);
}

async fn a_restart_returns_holds_that_fell_due_while_down(backend: Backend) {
    let db = TestDb::new(backend).await;
    let drop_id;
    {
        let store = db.store(EventBus::default()).await;
        drop_id = store.create_drop(&new_drop(4)).await.unwrap().id;
        for user in users(&store, 3).await {
            reserve(&*store, drop_id, user, Duration::from_millis(50))
                .await
                .unwrap();
        }
        assert_eq!(store.audit(drop_id).await.unwrap().available, 1);
        // The "server" goes away with its holds still ACTIVE.
    }
    tokio::time::sleep(Duration::from_millis(120)).await;

    let state = server::start(&db.settings()).await.unwrap();
    let audit = state.inventory.audit(drop_id).await.unwrap();
    assert_eq!((audit.available, audit.active_holds), (4, 0));
}

fn key(scope: &str, key: &str, fingerprint: &str) -> KeyRequest {
    KeyRequest {
        scope: scope.into(),
        key: key.into(),
        fingerprint: fingerprint.into(),
    }
}

/// Live keys one caller may have in these tests (the server's default).
const KEYS: i64 = 1_000;

async fn claim(store: &dyn Store, request: KeyRequest) -> KeyClaim {
    store.claim_keys(&[request], KEYS).await.unwrap().remove(0)
}

/// One caller may hold only so many live keys: a new one past them is refused, while the
/// retries of those it has still replay.
async fn a_callers_live_keys_are_capped(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let claims = store
        .claim_keys(
            &[
                key("user:1", "a", "fp"),
                key("user:1", "b", "fp"),
                key("user:1", "c", "fp"),
                key("user:2", "c", "fp"),
            ],
            2,
        )
        .await
        .unwrap();
    assert!(matches!(claims[0], KeyClaim::Claimed { .. }), "{claims:?}");
    assert!(matches!(claims[1], KeyClaim::Claimed { .. }), "{claims:?}");
    assert_eq!(claims[2], KeyClaim::TooMany);
    assert!(matches!(claims[3], KeyClaim::Claimed { .. }), "{claims:?}");
    let KeyClaim::Claimed { token } = claims[0] else {
        unreachable!()
    };
    let settled = Settlement {
        scope: "user:1".into(),
        key: "a".into(),
        token,
        answer: created(),
    };
    store.settle_keys(&[settled]).await.unwrap();
    let again = store
        .claim_keys(&[key("user:1", "a", "fp")], 2)
        .await
        .unwrap();
    assert!(matches!(again[0], KeyClaim::Replay(_)), "{again:?}");
}

fn created() -> Option<StoredResponse> {
    Some(StoredResponse {
        status: 201,
        content_type: None,
        location: None,
        body: "{}".into(),
    })
}

/// Idempotency keys are kept for retries while they can come, then forgotten.
async fn old_idempotency_keys_are_forgotten(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let KeyClaim::Claimed { token } = claim(store.as_ref(), key("user:1", "k", "fp")).await else {
        panic!("a new key is claimed");
    };
    let settled = Settlement {
        scope: "user:1".into(),
        key: "k".into(),
        token,
        answer: created(),
    };
    store.settle_keys(&[settled]).await.unwrap();
    assert_eq!(
        store.forget_keys(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert!(matches!(
        claim(store.as_ref(), key("user:1", "k", "fp")).await,
        KeyClaim::Replay(StoredResponse { status: 201, .. })
    ));
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(store.forget_keys(Duration::ZERO).await.unwrap(), 1);
    assert!(matches!(
        claim(store.as_ref(), key("user:1", "k", "fp")).await,
        KeyClaim::Claimed { .. }
    ));
}

/// Claims written together answer each request as if it came alone, in order: a key named
/// twice is claimed once and in flight for the second mention, a key reused for another request
/// is a mismatch, and settling them together records each answer.
async fn keys_claimed_together_answer_each_request(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let KeyClaim::Claimed { token: used } = claim(store.as_ref(), key("user:2", "a", "fp")).await
    else {
        panic!("a new key is claimed");
    };
    let claims = store
        .claim_keys(
            &[
                key("user:9", "b", "fp"),
                key("user:1", "b", "fp"),
                key("user:9", "b", "fp"),
                key("user:2", "a", "other"),
                key("user:2", "a", "fp"),
            ],
            KEYS,
        )
        .await
        .unwrap();
    let tokens: Vec<i64> = claims
        .iter()
        .filter_map(|c| match c {
            KeyClaim::Claimed { token } => Some(*token),
            _ => None,
        })
        .collect();
    assert!(matches!(claims[0], KeyClaim::Claimed { .. }), "{claims:?}");
    assert!(matches!(claims[1], KeyClaim::Claimed { .. }), "{claims:?}");
    assert_eq!(
        claims[2..],
        [KeyClaim::InFlight, KeyClaim::Mismatch, KeyClaim::InFlight]
    );
    let settle = |scope: &str, name: &str, token| Settlement {
        scope: scope.into(),
        key: name.into(),
        token,
        answer: created(),
    };
    store
        .settle_keys(&[
            settle("user:9", "b", tokens[0]),
            settle("user:1", "b", tokens[1]),
            settle("user:2", "a", used),
        ])
        .await
        .unwrap();
    for (scope, name) in [("user:9", "b"), ("user:1", "b"), ("user:2", "a")] {
        assert!(matches!(
            claim(store.as_ref(), key(scope, name, "fp")).await,
            KeyClaim::Replay(StoredResponse { status: 201, .. })
        ));
    }
}

async fn one_batch_answers_each_buyer_in_order(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store(EventBus::default()).await;
    let drop = store.create_drop(&new_drop(3)).await.unwrap();
    let [first, capped, second, late] = users(&store, 4).await[..] else {
        unreachable!()
    };
    // `capped` has bought the one unit a buyer may have.
    let hold = reserve(&*store, drop.id, capped, HOLD).await.unwrap();
    store.purchase(hold.reservation.id, capped).await.unwrap();
    let before = store.get_drop(drop.id).await.unwrap().unwrap();

    let outcomes = store
        .reserve_many(
            drop.id,
            &any_size(&[first, capped, first, second, late, UserId(777_777)]),
            &HoldTerms::lasting(HOLD),
            &mut Progress::default(),
        )
        .await
        .unwrap();
    let codes: Vec<_> = outcomes
        .iter()
        .map(|o| o.as_ref().err().map(|refusal| refusal.code))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::LimitReached),
            Some(ErrorCode::AlreadyReserved),
            None,
            Some(ErrorCode::OutOfStock),
            Some(ErrorCode::Unauthenticated),
        ]
    );
    let held: Vec<_> = outcomes.iter().flatten().collect();
    assert_eq!(held[0].reservation.user_id, first);
    assert_eq!(held[1].reservation.user_id, second);
    // Screens see the batch as one stock change: the last unit gone, the version up by one.
    for reserved in &held {
        assert_eq!(reserved.drop.available_stock, 0);
        assert_eq!(reserved.drop.version, before.version + 1);
    }
    assert_eq!(
        store.get_drop(drop.id).await.unwrap().unwrap().version,
        before.version + 1
    );

    // The next batch sees the holds of the last one.
    let again = store
        .reserve_many(
            drop.id,
            &any_size(&[second, late]),
            &HoldTerms::lasting(HOLD),
            &mut Progress::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        [
            Err(ErrorCode::AlreadyReserved.into()),
            Err(ErrorCode::OutOfStock.into())
        ]
    );
    let audit = store.audit(drop.id).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (0, 2, 1)
    );
    assert_invariant(store.as_ref(), drop.id).await;
}

/// A server on `db` whose reserves share transactions up to `batch_max` at a time.
async fn server_with_batches(db: &TestDb, batch_max: usize) -> server::AppState {
    let settings = dropline::server::settings::Settings {
        reserve_batch_max: batch_max,
        ..db.settings()
    };
    server::start(&settings).await.unwrap()
}

/// One burst of concurrent reserves on one drop: a buyer who clicks ten times, a buyer at the
/// limit, and forty buyers who click once. Batched or not, each gets the same answers.
async fn burst_on_one_drop(backend: Backend, batch_max: usize) {
    let db = TestDb::new(backend).await;
    let state = server_with_batches(&db, batch_max).await;
    let inventory = state.inventory.clone();
    let drop = inventory.create_drop(new_drop(100)).await.unwrap();
    let eager = state.sessions.sign_up("Eager").await.unwrap().0.id;
    let capped = state.sessions.sign_up("Capped").await.unwrap().0.id;
    let hold = inventory
        .reserve(drop.id, Reserve::any(capped))
        .await
        .unwrap();
    inventory
        .purchase(hold.reservation.id, capped)
        .await
        .unwrap();
    let mut others = Vec::new();
    for i in 0..40 {
        others.push(
            state
                .sessions
                .sign_up(&format!("buyer {i}"))
                .await
                .unwrap()
                .0
                .id,
        );
    }

    let mut clicks = Vec::new();
    for (i, &other) in others.iter().enumerate() {
        clicks.push(other);
        if i % 4 == 0 {
            clicks.push(eager);
        }
        if i % 13 == 0 {
            clicks.push(capped);
        }
    }
    let tasks: Vec<_> = clicks
        .iter()
        .map(|&user| {
            let inventory = inventory.clone();
            tokio::spawn(
                async move { (user, inventory.reserve(drop.id, Reserve::any(user)).await) },
            )
        })
        .collect();
    let mut answers: std::collections::HashMap<UserId, Vec<Option<ErrorCode>>> = Default::default();
    for task in tasks {
        let (user, outcome) = task.await.unwrap();
        let code = outcome.as_ref().err().map(|e| e.code);
        if let Ok(reserved) = &outcome {
            assert_eq!(reserved.reservation.user_id, user);
        }
        answers.entry(user).or_default().push(code);
    }

    let mut eager_answers = answers.remove(&eager).unwrap();
    eager_answers.sort_by_key(|code| code.is_some());
    assert_eq!(eager_answers[0], None, "the eager buyer got no hold");
    assert!(
        eager_answers[1..]
            .iter()
            .all(|code| *code == Some(ErrorCode::AlreadyReserved)),
        "{eager_answers:?}"
    );
    assert_eq!(eager_answers.len(), 10);
    assert_eq!(
        answers.remove(&capped).unwrap(),
        [Some(ErrorCode::LimitReached); 4]
    );
    for other in others {
        assert_eq!(answers[&other], [None], "buyer {other}");
    }
    let audit = inventory.audit(drop.id).await.unwrap();
    assert_eq!(
        (audit.available, audit.active_holds, audit.purchases),
        (100 - 1 - 1 - 40, 41, 1)
    );
    assert!(audit.holds(), "{audit:?}");
}

async fn a_burst_gives_each_buyer_their_own_answer(backend: Backend) {
    burst_on_one_drop(backend, 256).await;
}

async fn a_burst_gives_the_same_answers_with_batching_off(backend: Backend) {
    burst_on_one_drop(backend, 1).await;
}

async fn two_instances_bursting_on_one_drop_never_oversell(backend: Backend) {
    let db = TestDb::new(backend).await;
    let a = server_with_batches(&db, 256).await.inventory.clone();
    let b = server_with_batches(&db, 256).await.inventory.clone();
    let drop = a.create_drop(new_drop(50)).await.unwrap();
    let buyers = users(a.store(), 400).await;

    let tasks: Vec<_> = buyers
        .iter()
        .enumerate()
        .map(|(i, &user)| {
            let instance = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { instance.reserve(drop.id, Reserve::any(user)).await })
        })
        .collect();
    let (mut held, mut sold_out) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => held += 1,
            Err(e) if e.code == ErrorCode::OutOfStock => sold_out += 1,
            Err(other) => panic!("unexpected outcome: {other:?}"),
        }
    }
    assert_eq!((held, sold_out), (50, 350));
    let audit = b.audit(drop.id).await.unwrap();
    assert_eq!((audit.available, audit.active_holds), (0, 50));
    assert!(audit.holds(), "{audit:?}");
}

on_both_databases!(
    five_hundred_buyers_for_twenty_units,
    one_live_hold_per_buyer_even_when_clicking_fast,
    only_the_holder_can_buy,
    a_purchase_after_the_deadline_fails_even_before_expiry_runs,
    cancel_gives_the_unit_back,
    refusals_name_their_reason,
    the_feed_shows_the_three_newest_buyers,
    mixed_concurrent_traffic_keeps_every_unit_accounted_for,
    the_worker_returns_a_unit_at_its_deadline,
    a_restart_returns_holds_that_fell_due_while_down,
    old_idempotency_keys_are_forgotten,
    keys_claimed_together_answer_each_request,
    a_callers_live_keys_are_capped,
    sign_ups_together_give_each_buyer_a_user_and_a_session,
    one_batch_answers_each_buyer_in_order,
    a_burst_gives_each_buyer_their_own_answer,
    a_burst_gives_the_same_answers_with_batching_off,
    two_instances_bursting_on_one_drop_never_oversell,
);

/// A purchase a buyer was told of survives a power cut: unless the operator chooses otherwise,
/// SQLite syncs every commit to disk (`synchronous = FULL`), not just every checkpoint; an
/// operator who sets `sqlite_synchronous = "normal"` gets NORMAL.
#[tokio::test]
async fn sqlite_syncs_every_commit_unless_told_otherwise() {
    use server::settings::{Settings, SqliteSync};
    for (sync, expected) in [
        (Settings::default().sqlite_synchronous, 2),
        (SqliteSync::Normal, 1),
    ] {
        let db = TestDb::new(Backend::Sqlite).await;
        let store = server::store::SqliteStore::connect(&db.url, 4, sync, EventBus::default())
            .await
            .unwrap();
        let level: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(level, expected, "{sync:?}: PRAGMA synchronous is {level}");
    }
}
