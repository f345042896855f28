"""The import-circle check finds a circle where there is one, and only there.

usage: python3 -m unittest discover -s scripts -p 'test_*.py'
"""

import contextlib
import importlib.util
import io
import tempfile
import unittest
from pathlib import Path

spec = importlib.util.spec_from_file_location(
    "import_cycles", Path(__file__).with_name("import-cycles.py")
)
checker = importlib.util.module_from_spec(spec)
spec.loader.exec_module(checker)


def check(files: dict[str, str]) -> tuple[int, str]:
    """Runs the check over a crate made of `files` (path under src/ → text)."""
    with tempfile.TemporaryDirectory() as root:
        src = Path(root) / "src"
        for name, text in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_text(text)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = checker.main([str(src)])
        return code, out.getvalue()


class Circles(unittest.TestCase):
    def test_two_modules_using_each_other_are_a_circle(self):
        code, out = check({
            "lib.rs": "mod a;\nmod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "pub struct B;\nfn f() -> crate::a::A { crate::a::A }\n",
        })
        self.assertEqual(code, 1, out)
        self.assertIn("a.rs <-> ", out)

    def test_a_loop_through_a_parent_and_super_is_a_circle(self):
        code, out = check({
            "lib.rs": "mod store;\n",
            "store/mod.rs": "mod sqlite;\npub struct Settings;\nfn f(_: sqlite::Sync) {}\n",
            "store/sqlite.rs": "use super::Settings;\npub struct Sync;\n",
        })
        self.assertEqual(code, 1, out)

    def test_a_module_using_its_crate_roots_items_is_a_circle(self):
        code, _ = check({
            "main.rs": "mod a;\npub type Result = ();\nfn main() { a::run() }\n",
            "a.rs": "use crate::Result;\npub fn run() {}\n",
        })
        self.assertEqual(code, 1)

    def test_a_parent_re_exporting_a_child_that_uses_it_is_no_circle(self):
        # A parent that lists what its children offer depends on nothing by that.
        code, out = check({
            "lib.rs": "pub mod model;\n",
            "model/mod.rs": "mod drop;\npub use drop::Drop;\npub struct Limit;\n",
            "model/drop.rs": "use super::Limit;\npub struct Drop(Limit);\n",
        })
        self.assertEqual(code, 0, out)

    def test_naming_a_sibling_through_the_parents_re_export_uses_the_sibling(self):
        code, out = check({
            "lib.rs": "pub mod model;\n",
            "model/mod.rs": "mod drop;\nmod ids;\npub use drop::Drop;\npub use ids::Id;\n"
                            "pub fn first() -> Drop { Drop(Id) }\n",
            "model/drop.rs": "use super::Id;\npub struct Drop(pub Id);\n",
            "model/ids.rs": "pub struct Id;\n",
        })
        self.assertEqual(code, 0, out)

    def test_comments_strings_and_tests_are_no_use(self):
        code, out = check({
            "lib.rs": "pub mod a;\npub mod b;\n",
            "a.rs": "use crate::b::B;\npub struct A;\n",
            "b.rs": "pub struct B;\n// crate::a::A in a comment\nconst S: &str = \"crate::a::A\";\n"
                    "#[cfg(test)]\nmod tests {\n    use crate::a::A;\n}\n",
        })
        self.assertEqual(code, 0, out)
        self.assertIn("no import circles", out)

if __name__ == "__main__":
    unittest.main()
