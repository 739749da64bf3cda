"""deb_extract without dpkg-deb: `ar` + `tar` run as argument lists, so a quote in a path is harmless."""

import io
import shutil
import tarfile

import pytest

from spike_lib.data import sources


def _ar_member(name: bytes, data: bytes) -> bytes:
    head = name.ljust(16) + b"0".ljust(12) + b"0".ljust(6) + b"0".ljust(6) + b"100644".ljust(8)
    head += str(len(data)).encode().ljust(10) + b"`\n"
    return head + data + (b"\n" if len(data) % 2 else b"")


def _make_deb(path, files: dict):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    deb = b"!<arch>\n" + _ar_member(b"debian-binary", b"2.0\n") + _ar_member(b"data.tar.xz", buf.getvalue())
    path.write_bytes(deb)


@pytest.mark.skipif(shutil.which("ar") is None or shutil.which("tar") is None, reason="needs ar and tar")
def test_fallback_handles_a_quote_in_the_path(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(sources.shutil, "which", lambda n: None if n == "dpkg-deb" else real_which(n))
    folder = tmp_path / "it's; touch PWNED"
    folder.mkdir()
    deb = folder / "pkg.deb"
    _make_deb(deb, {"usr/share/doc/x.txt": b"hello\n"})
    dest = folder / "out'dir"
    sources.deb_extract(deb, dest)
    assert (dest / "usr/share/doc/x.txt").read_bytes() == b"hello\n"
    assert not any(p.name == "PWNED" for p in tmp_path.rglob("*"))


def test_fallback_reports_a_bad_deb(tmp_path, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(sources.shutil, "which", lambda n: None if n == "dpkg-deb" else real_which(n))
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match=r"bad.deb is not a valid .deb .*data build"):
        sources.deb_extract(bad, tmp_path / "out")
