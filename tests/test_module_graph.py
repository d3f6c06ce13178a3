"""The static-import closure used to preload a page's modules."""

from __future__ import annotations

from pathlib import Path

from cocalc_k8s.web.module_graph import module_closure


def test_static_imports_are_followed_and_dynamic_ones_are_not(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "chunks").mkdir(parents=True)
    (tmp_path / "app.js").write_text(
        'import { a } from "./a.js";\nimport "./side.js";\n'
        'export * from "./vendor/lib.js";\nconst later = () => import("./lazy.js");\n'
    )
    (tmp_path / "a.js").write_text('import x from "./app.js"; export const a = x;')
    (tmp_path / "side.js").write_text("")
    (tmp_path / "lazy.js").write_text("")
    (tmp_path / "vendor" / "lib.js").write_text(
        'import{b as c}from"./chunks/one.js";import"./chunks/two.js";let d=import("./x.js");'
    )
    (tmp_path / "vendor" / "chunks" / "one.js").write_text('export*from"../../outside.js"')
    (tmp_path / "vendor" / "chunks" / "two.js").write_text("")
    (tmp_path / "outside.js").write_text('import "../../etc/passwd.js"')

    found = module_closure(tmp_path, ("app.js",))

    assert found == (
        "app.js",
        "a.js",
        "side.js",
        "vendor/lib.js",
        "vendor/chunks/one.js",
        "vendor/chunks/two.js",
        "outside.js",
    )


def test_a_missing_module_is_left_out(tmp_path: Path) -> None:
    (tmp_path / "app.js").write_text('import "./gone.js";')
    assert module_closure(tmp_path, ("app.js",)) == ("app.js",)
