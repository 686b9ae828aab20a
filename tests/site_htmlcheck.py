"""Checks for generated HTML, used by the renderer's tests.

`check_page` parses a page with the standard library's parser and reports what a
validator would: a missing doctype or lang, unclosed or misnested elements (the templates
close every element explicitly), duplicate ids, images without alt, links without href,
and URLs that are not relative (absolute paths, other hosts, protocol-relative). It also
returns the local URLs so a test can check they all exist.
"""
from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: set[str] = set()
        self.urls: list[str] = []
        self.doctype = False
        self.lang = False
        self.scripts: list[str] = []

    def handle_decl(self, decl: str) -> None:
        self.doctype = self.doctype or decl.lower() == "doctype html"

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html" and a.get("lang"):
            self.lang = True
        if "id" in a:
            if a["id"] in self.ids:
                self.errors.append(f"duplicate id {a['id']!r}")
            self.ids.add(a["id"] or "")
        if tag == "img" and "alt" not in a:
            self.errors.append(f"<img src={a.get('src')!r}> has no alt")
        if tag == "a" and "href" not in a:
            self.errors.append("<a> without href")
        if tag == "script":
            self.scripts.append(a.get("src") or "")
        for key in ("href", "src"):
            url = a.get(key)
            if url is None:
                continue
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith("/"):
                self.errors.append(f"non-relative URL {url!r} in <{tag}>")
            elif parts.path:
                self.urls.append(unquote(parts.path))

    def handle_starttag(self, tag: str, attrs) -> None:
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            self.errors.append(f"end tag for void element </{tag}>")
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> does not close <{self.stack[-1] if self.stack else 'nothing'}>")
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def check_page(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(errors, local URLs as written, script srcs) of one HTML file."""
    c = _Checker()
    c.feed(path.read_text(encoding="utf-8"))
    c.close()
    errors = list(c.errors)
    if not c.doctype:
        errors.append("no <!DOCTYPE html>")
    if not c.lang:
        errors.append("no <html lang>")
    if c.stack:
        errors.append(f"unclosed elements at the end: {c.stack}")
    return [f"{path}: {e}" for e in errors], c.urls, c.scripts


def check_site(root: Path) -> tuple[list[str], int]:
    """Check every page of a site; every local link and image must exist. Returns
    (problems, pages checked)."""
    problems: list[str] = []
    pages = sorted(root.rglob("*.html"))
    for page in pages:
        errors, urls, _ = check_page(page)
        problems += errors
        for url in urls:
            target = (page.parent / url).resolve()
            if root.resolve() not in target.parents:
                problems.append(f"{page}: link {url!r} leaves the site")
            elif not target.is_file():
                problems.append(f"{page}: link {url!r} points to a missing file")
    return problems, len(pages)
