// Solves a Dropline door's proof of work off the page's thread: ALTCHA's PoW v2 in its
// deterministic mode, PBKDF2 by the browser's own WebCrypto. Given the challenge's JSON, it
// counts up from 0 until the key derived from (nonce bytes + counter as 4 bytes big-endian,
// salt bytes, `cost` iterations) starts with `keyPrefix`, and answers base64 of
// {"challenge", "solution"}: the proof a join sends.
self.onmessage = async (event) => {
  try {
    const challenge = JSON.parse(event.data);
    const p = challenge.parameters;
    const bytes = (hex) => Uint8Array.from(hex.match(/../g) || [], (b) => parseInt(b, 16));
    const nonce = bytes(p.nonce);
    const salt = bytes(p.salt);
    const hash = p.algorithm.replace(/^PBKDF2\//i, "").toUpperCase();
    const password = new Uint8Array(nonce.length + 4);
    password.set(nonce);
    const counterAt = new DataView(password.buffer, nonce.length, 4);
    const started = performance.now();
    for (let counter = 0; counter <= 0xffffffff; counter++) {
      counterAt.setUint32(0, counter);
      const key = await crypto.subtle.importKey("raw", password, "PBKDF2", false, ["deriveBits"]);
      const derived = new Uint8Array(
        await crypto.subtle.deriveBits(
          { name: "PBKDF2", hash, salt, iterations: p.cost },
          key,
          p.keyLength * 8,
        ),
      );
      const hex = Array.from(derived, (b) => b.toString(16).padStart(2, "0")).join("");
      if (hex.startsWith(p.keyPrefix)) {
        const time = Math.round(performance.now() - started);
        const solution = { counter, derivedKey: hex, time };
        self.postMessage({ proof: btoa(JSON.stringify({ challenge, solution })) });
        return;
      }
    }
    self.postMessage({ error: "no counter solves this challenge" });
  } catch (error) {
    self.postMessage({ error: String(error) });
  }
};
