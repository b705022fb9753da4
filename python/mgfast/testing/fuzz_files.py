"""Corrupt spectrum files for the readers' fuzz tests (tests/test_io_fuzz.py) and the longer fuzz
run (scripts/fuzz_readers.py): valid files in every layout mgfast reads, written once, then
mutated (bit flips, truncations, inserted and deleted bytes, header cards given other values,
corrupt variable-length-array descriptors, damaged gzip streams, NumPy headers rewritten).

The contract the fuzzing checks (docs/io.md): reading a file either gives spectra that
preprocessing accepts (or refuses with a ValueError) or raises ``mgfast.io.ReadError``; never
any other exception, a crash or a hang.
"""

from __future__ import annotations

import gzip
import io as _io
import re
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from .spectrum_files import quasar, write_4most, write_desi, write_eso_sdp, write_sdss

BLOCK = 2880
STEP = 16  # every 16th pixel of the synthetic quasar: ~1450 pixels, small files


@dataclass(frozen=True)
class Base:
    """A valid file: its name, suffix, bytes and format (None: not FITS)."""

    name: str
    suffix: str
    data: bytes
    format: str


def _table_vla(path: Path) -> Path:
    """A generic table whose rows hold spectra of different lengths (variable-length arrays)."""
    q = quasar(2)
    w, f, e = q.wave[::STEP], q.flux[:, ::STEP], q.err[:, ::STEP]
    n = [w.size, w.size - 300]
    cols = [
        fits.Column("ID", "8A", array=["vla-a", "vla-b"]),
        fits.Column("WAVELENGTH", "PD()", array=np.array([w[: n[0]], w[: n[1]]], dtype=object)),
        fits.Column("FLUX", "PE()", array=np.array([f[0, : n[0]], f[1, : n[1]]], dtype=object)),
        fits.Column("ERROR", "PE()", array=np.array([e[0, : n[0]], e[1, : n[1]]], dtype=object)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


def _table_rows(path: Path) -> Path:
    q = quasar(2)
    w, f, e = q.wave[::STEP], q.flux[:, ::STEP], q.err[:, ::STEP]
    n = w.size
    cols = [
        fits.Column("ID", "8A", array=["qso-a", "qso-b"]),
        fits.Column("RA", "D", array=[5.0, 6.0]),
        fits.Column("LAMBDA", f"{n}D", unit="nm", array=np.tile(w / 10, (2, 1))),
        fits.Column("FLUX", f"{n}E", array=f),
        fits.Column("IVAR", f"{n}E", array=1 / e**2),
        fits.Column("MASK", f"{n}J", array=np.zeros((2, n), np.int32)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


def _table_pixels(path: Path) -> Path:
    q = quasar()
    cols = [
        fits.Column("wavelength", "D", unit="Angstrom", array=q.wave[::STEP]),
        fits.Column("flux", "E", array=q.flux[0, ::STEP]),
        fits.Column("sigma", "E", array=q.err[0, ::STEP]),
    ]
    hdr = fits.Header({"OBJECT": "pix", "AIRORVAC": "vac", "SPEC_RES": 20000.0})
    fits.HDUList([fits.PrimaryHDU(header=hdr), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


def _eso_sdp(path: Path) -> Path:
    q = quasar()
    w, f, e = q.wave[::STEP], q.flux[0, ::STEP], q.err[0, ::STEP]
    qual = np.zeros(w.size, np.int32)
    qual[10:20] = 1
    return write_eso_sdp(path, w, f, e, qual=qual, continuum=q.continuum[::STEP],
                         air=True, header={"SPEC_RES": 40000.0})  # fmt: skip


def _4most(path: Path) -> Path:
    q = quasar()
    w, f, e = q.wave[::STEP], q.flux[0, ::STEP], q.err[0, ::STEP]
    return write_4most(path, w / 10, f, e, qual=np.zeros(w.size, np.int32), unit="nm",
                       header={"RA": 1.0, "DEC": 2.0, "SPEC_RES": 20000.0})  # fmt: skip


def _sdss(path: Path) -> Path:
    w = 10 ** (3.5500 + 1e-3 * np.arange(400))
    rng = np.random.default_rng(1)
    flux = (1 + 0.05 * rng.standard_normal(w.size)).astype(np.float32)
    return write_sdss(path, w, flux, np.full(w.size, 25.0, np.float32), np.zeros(w.size, np.int32))


def _desi(path: Path) -> Path:
    wb = 3600.0 + 8.0 * np.arange(276)  # 3600-5800
    wr = 5760.0 + 8.0 * np.arange(233)  # overlaps B on 5760-5800
    cams = {
        c: (w, np.ones((2, w.size)), np.full((2, w.size), 4.0), np.zeros((2, w.size)))
        for c, w in (("B", wb), ("R", wr))
    }
    return write_desi(path, cams, targetid=[11, 12], ra=[1.0, 2.0], dec=[3.0, 4.0])


def _npz(path: Path) -> Path:
    q = quasar(2)
    np.savez(path, wave=q.wave[::STEP], flux=q.flux[:, ::STEP], err=q.err[:, ::STEP],
             id=np.array(["a", "b"]), ra=np.array([1.0, 2.0]), resolution=20000.0)  # fmt: skip
    return path


def _npy(path: Path) -> Path:
    q = quasar()
    np.save(path, np.stack([q.wave[::STEP], q.flux[0, ::STEP], q.err[0, ::STEP]]))
    return path


def _hdf5(path: Path) -> Path:
    import h5py

    from mgfast import grid

    q = quasar(2)
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "mgfast-simulation-1"
        w = grid.wavelength()
        f["wavelength"] = w
        f["flux"] = np.ones((2, w.size), np.float32) * q.flux[:, :1]
        f["err"] = np.full((2, w.size), 0.1, np.float32)
    return path


# name: (writer, suffix, format)
WRITERS = {
    "eso-sdp": (_eso_sdp, ".fits", "eso-sdp"),
    "4most": (_4most, ".fits", "4most"),
    "sdss": (_sdss, ".fits", "sdss"),
    "desi": (_desi, ".fits", "desi"),
    "table-rows": (_table_rows, ".fits", "fits-table"),
    "table-pixels": (_table_pixels, ".fits", "fits-table"),
    "table-vla": (_table_vla, ".fits", "fits-table"),
    "eso-sdp.gz": (_eso_sdp, ".fits.gz", "eso-sdp"),
    "table-vla.gz": (_table_vla, ".fits.gz", "fits-table"),
    "sdss.gz": (_sdss, ".fits.gz", "sdss"),
    "npz": (_npz, ".npz", "numpy"),
    "npy": (_npy, ".npy", "numpy"),
    "hdf5": (_hdf5, ".h5", "mgfast-hdf5"),
}


def base_files(directory: Path, names: tuple[str, ...] | None = None) -> dict[str, Base]:
    """The valid files (written under ``directory``), by name."""
    out = {}
    for name in names or tuple(WRITERS):
        writer, suffix, fmt = WRITERS[name]
        plain = directory / f"base-{name.replace('.gz', '')}{suffix.replace('.gz', '')}"
        if not plain.exists():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                writer(plain)
        data = plain.read_bytes()
        if suffix.endswith(".gz"):
            data = gzip.compress(data, mtime=0)
        out[name] = Base(name, suffix, data, fmt)
    return out


# ---- FITS structure ---------------------------------------------------------------------------


def _cards(block: bytes) -> list[bytes]:
    return [block[i : i + 80] for i in range(0, BLOCK, 80)]


def fits_layout(data: bytes) -> list[tuple[int, int, int, dict[str, str]]]:
    """(header start, data start, data end, cards) of each HDU that parses; stops at the first
    that does not (a corrupt file)."""
    out = []
    pos = 0
    while pos + BLOCK <= len(data):
        cards: dict[str, str] = {}
        start = pos
        end_seen = False
        while pos + BLOCK <= len(data) and not end_seen:
            for c in _cards(data[pos : pos + BLOCK]):
                key = c[:8].decode("latin-1").strip()
                if key == "END":
                    end_seen = True
                    break
                if c[8:10] == b"= ":
                    cards[key] = c[10:].decode("latin-1").split("/")[0].strip()
            pos += BLOCK
        if not end_seen:
            break
        try:
            naxis = int(cards.get("NAXIS", "0"))
            size = abs(int(cards.get("BITPIX", "8"))) // 8 if naxis else 0
            for i in range(1, naxis + 1):
                size *= int(cards[f"NAXIS{i}"])
            size = (size + int(cards.get("PCOUNT", "0"))) * int(cards.get("GCOUNT", "1"))
        except (KeyError, ValueError):
            break
        out.append((start, pos, pos + size, cards))
        pos += -(-size // BLOCK) * BLOCK
    return out


def header_spans(data: bytes) -> list[tuple[int, int]]:
    return [(h, d) for h, d, _, _ in fits_layout(data)] or [(0, min(len(data), BLOCK))]


# ---- mutations --------------------------------------------------------------------------------

CARD_VALUES: tuple[bytes, ...] = (
    b"0", b"1", b"-1", b"2", b"3", b"8", b"-32", b"16", b"2147483647", b"4294967295",
    b"9223372036854775807", b"-9223372036854775808", b"1000000000000", b"1E300", b"-1E300",
    b"NAN", b"1.5", b"T", b"F", b"''", b"'COADD'", b"'FLUX'", b"'WAVE'", b"'LOGLAM'",
    b"'ERR'", b"'ERR_FLUX'", b"'B_FLUX'", b"'BRZ_FLUX'", b"'FIBERMAP'", b"'SPECTRUM'",
    b"'IMAGE   '", b"'BINTABLE'", b"'4MOST'", b"'SCIENCE.SPECTRUM'", b"'air'", b"'nm'",
    b"'parsec'", b"'em.wl;obs.atmos'", b"'PD(4294967295)'", b"'1PE(10)'", b"'PE()'",
    b"'QD(9)'", b"'100000000D'", b"'0E'", b"'1D'", b"'2E'", b"'8A'", b"'ZZZ'", b"'X'",
    b"'\xc3\xa9\xff\xfe'", b"\x80\x81\x82", b"'unterminated",
)  # fmt: skip


def _flip_bits(b: bytearray, positions: np.ndarray, rng: np.random.Generator) -> None:
    for p in positions:
        b[int(p)] ^= 1 << int(rng.integers(8))


def _card_positions(data: bytes) -> list[int]:
    out = []
    for h, d in header_spans(data):
        for p in range(h, d, 80):
            c = data[p : p + 80]
            if c[8:10] == b"= " or c[:8].strip() in (b"END",):
                out.append(p)
    return out


def mutate_fits(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    if kind == "header-bitflip":
        spans = header_spans(data)
        h, d = spans[int(rng.integers(len(spans)))]
        _flip_bits(b, rng.integers(h, d, size=int(rng.integers(1, 5))), rng)
        return bytes(b)
    if kind == "card":
        cards = _card_positions(data)
        for _ in range(int(rng.integers(1, 3))):
            if not cards:
                break
            p = cards[int(rng.integers(len(cards)))]
            if b[p : p + 3] == b"END":
                b[p : p + 80] = b"COMMENT".ljust(80)
                continue
            v = CARD_VALUES[int(rng.integers(len(CARD_VALUES)))]
            b[p + 10 : p + 80] = (v.rjust(20) if v[:1] != b"'" else v).ljust(70)[:70]
        return bytes(b)
    if kind == "nonascii":
        spans = header_spans(data)
        h, d = spans[int(rng.integers(len(spans)))]
        for p in rng.integers(h, d, size=int(rng.integers(1, 4))):
            b[int(p)] = int(rng.integers(0x80, 0x100))
        return bytes(b)
    if kind == "table-data":  # VLA descriptors and other row bytes
        hdus = [x for x in fits_layout(data) if x[2] > x[1]]
        if not hdus:
            return mutate_bytes(data, "bitflip", rng)
        _, d, e, hdu_cards = hdus[int(rng.integers(len(hdus)))]
        try:
            rows_end = d + int(hdu_cards.get("NAXIS1", "0")) * int(hdu_cards.get("NAXIS2", "0"))
        except ValueError:
            rows_end = e
        rows_end = min(max(rows_end, d + 4), e, len(b))
        p = int(rng.integers(d, max(d + 1, rows_end - 3)))
        word = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, int(rng.integers(1 << 32)), 0)[
            int(rng.integers(5))
        ]
        b[p : p + 4] = int(word).to_bytes(4, "big")
        return bytes(b)
    return mutate_bytes(data, kind, rng)


def mutate_bytes(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    n = len(b)
    if kind == "bitflip" and n:
        _flip_bits(b, rng.integers(0, n, size=int(rng.integers(1, 17))), rng)
    elif kind == "truncate":
        if rng.random() < 0.3 and n > BLOCK:  # near a block boundary
            k = int(rng.integers(1, n // BLOCK + 1)) * BLOCK + int(rng.integers(-2, 3))
            return bytes(b[: max(0, min(k, n - 1))])
        return bytes(b[: int(rng.integers(0, max(1, n)))])
    elif kind == "insert":
        p = int(rng.integers(0, n + 1))
        ins = rng.integers(0, 256, size=int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        b[p:p] = ins
    elif kind == "delete" and n:
        p = int(rng.integers(0, n))
        del b[p : p + int(rng.integers(1, 3000))]
    elif kind == "random":
        k = int(rng.integers(0, 20000))
        junk = rng.integers(0, 256, size=k, dtype=np.uint8).tobytes()
        return (b"SIMPLE  =                    T" + junk) if rng.random() < 0.3 else junk
    return bytes(b)


def _mutate_npy_header(data: bytes, rng: np.random.Generator) -> bytes:
    m = re.search(rb"\{.*?\}", data[:512])
    if m is None:
        return mutate_bytes(data, "bitflip", rng)
    head = m.group(0)
    edits: list[Callable[[bytes], bytes]] = [
        lambda h: re.sub(rb"'shape': \([^)]*\)", b"'shape': (2, 4294967295)", h),
        lambda h: re.sub(rb"'shape': \([^)]*\)", b"'shape': (99999999999999,)", h),
        lambda h: re.sub(rb"'shape': \([^)]*\)", b"'shape': (-3, 2)", h),
        lambda h: re.sub(rb"'shape': \([^)]*\)", b"'shape': (3, 'x')", h),
        lambda h: re.sub(rb"'descr': '[^']*'", b"'descr': '|O'", h),
        lambda h: re.sub(rb"'descr': '[^']*'", b"'descr': '<U999999999'", h),
        lambda h: re.sub(rb"'descr': '[^']*'", b"'descr': 'zz'", h),
        lambda h: re.sub(rb"'descr': '[^']*'", b"'descr': [('a', '<f8', (99999999,))]", h),
        lambda h: re.sub(rb"'fortran_order': \w+", b"'fortran_order': 7", h),
        lambda h: h.replace(b"'", b"", 1),  # an unterminated string: tokenize fails
        lambda h: h.replace(b"{", b"{{", 1),
        lambda h: h[: len(h) // 2],
        lambda h: h.replace(b":", b"\xff", 1),
        lambda h: b"[" + h[1:],
        lambda h: re.sub(rb"\)", b"", h, count=1),
    ]
    new = edits[int(rng.integers(len(edits)))](head)
    new = new[: len(head)].ljust(len(head))  # keep the header's length
    return data[: m.start()] + new + data[m.end() :]


def mutate_npz(data: bytes, rng: np.random.Generator) -> bytes:
    """One member of the archive with a rewritten .npy header, the archive rebuilt."""
    src = zipfile.ZipFile(_io.BytesIO(data))
    names = src.namelist()
    victim = names[int(rng.integers(len(names)))]
    out = _io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            member = src.read(name)
            z.writestr(name, _mutate_npy_header(member, rng) if name == victim else member)
    return out.getvalue()


FITS_KINDS = ("bitflip", "header-bitflip", "card", "nonascii", "table-data", "truncate",
              "insert", "delete", "random")  # fmt: skip
GZ_KINDS = ("gz-truncate", "gz-bitflip", *FITS_KINDS)
NUMPY_KINDS = ("bitflip", "truncate", "insert", "delete", "random", "npy-header")
HDF5_KINDS = ("bitflip", "truncate", "insert", "delete", "random")


def kinds(base: Base) -> tuple[str, ...]:
    if base.suffix.endswith(".gz"):
        return GZ_KINDS
    if base.suffix in (".npz", ".npy"):
        return NUMPY_KINDS
    if base.suffix == ".h5":
        return HDF5_KINDS
    return FITS_KINDS


def mutate(base: Base, kind: str, rng: np.random.Generator) -> bytes:
    """The base file's bytes mutated by ``kind`` (one of ``kinds(base)``)."""
    if kind == "gz-truncate":
        return base.data[: int(rng.integers(0, len(base.data)))]
    if kind == "gz-bitflip":
        b = bytearray(base.data)
        _flip_bits(b, rng.integers(0, len(b), size=int(rng.integers(1, 5))), rng)
        return bytes(b)
    if base.suffix.endswith(".gz"):  # mutate the FITS inside, compress again
        inner = mutate_fits(gzip.decompress(base.data), kind, rng)
        return gzip.compress(inner, mtime=0)
    if kind == "npy-header":
        if base.suffix == ".npz":
            return mutate_npz(base.data, rng)
        return _mutate_npy_header(base.data, rng)
    if base.suffix == ".fits":
        return mutate_fits(base.data, kind, rng)
    return mutate_bytes(base.data, kind, rng)


def make_case(bases: dict[str, Base], rng: np.random.Generator) -> tuple[Base, str, bytes]:
    """A random base file, mutation and the mutated bytes."""
    names = sorted(bases)
    base = bases[names[int(rng.integers(len(names)))]]
    ks = kinds(base)
    kind = ks[int(rng.integers(len(ks)))]
    return base, kind, mutate(base, kind, rng)


def check_file(path: str, format: str | None) -> tuple[str, str]:
    """Read a file as ``mgfast detect`` would and preprocess what it gives: ("ok", n spectra),
    ("ReadError", message), ("ReadError-wrapped", message) for one that ``mgfast.io.read``
    made of another library's exception (its ``__cause__``), or ("preprocess-ValueError",
    message). Any other exception propagates: it breaks the contract."""
    import mgfast
    from mgfast import io

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            io.detect_format(path)
            spectra = io.read(path, format, allow_low_resolution=True)
        except io.ReadError as e:
            return "ReadError" + ("-wrapped" if e.__cause__ is not None else ""), str(e)
        assert spectra and all(isinstance(s, io.Spectrum) for s in spectra)
        for s in spectra:
            try:
                mgfast.preprocess(s.flux, s.wave, s.err, ivar=s.ivar, mask=s.mask,
                                  resolution=s.resolution, normalised=s.normalised,
                                  allow_empty=True, threads=1)  # fmt: skip
            except ValueError as e:
                return "preprocess-ValueError", str(e)
    return "ok", str(len(spectra))
