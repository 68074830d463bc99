"""Column maps: how one survey's catalogue columns become the arrays and attributes of a tile.

A column map is a small TOML file. Shipped maps live in ``distributed_pz/data/columnmaps/`` and
are named by their file stem (``kids_dr4``); a user's own map is given by its path. Sections and
keys (``?`` marks an optional key)::

    description?   one line saying what the map reads
    [band_set]     name; bands?, image_bands?, depth_5sigma?  (``bands`` declares a new set and
                   registers it; without it ``name`` must be a set known to distributed_pz.bands)
    [catalog]      format? (fits | parquet | csv | ascii; default: from the file suffix),
                   hdu? (FITS table HDU, default 1), delimiter? (csv ","; ascii whitespace),
                   comment? ("#"), header? (true: the first non-comment line names the columns),
                   names? (column names, replacing the header or standing in for a missing one)
    [columns]      object_id? (absent: tile hash + row index), object_id_hash? (false; true turns text ids
                   into 63-bit integers), ra? and dec? (both or neither; neither: NaN), z_spec?
    [magnitudes]   mag, mag_err (a template with {band}, or a table band -> column),
                   zeropoint (number or table band -> number), not_detected? ([]), not_observed?
                   ([]), valid_range? ([-10, 50]: finite values outside it are flagged bad)
    [class]?       column, values (table catalogue value -> galaxy | star | qso | unknown),
                   default? (class of unlisted values; absent: an unlisted value is an error)
    [filter]?      z_spec_min?, z_spec_max? (rows kept where z_spec_min < z_spec < z_spec_max),
                   column? and ranges? (rows kept where lo <= value < hi for one [lo, hi] pair)
    [images]       pixel_scale_arcsec, psf_fwhm_arcsec? (table band -> arcsec), files? (table
                   band -> image path; ``{tile}`` is replaced, relative paths start at the catalogue)
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from distributed_pz.bands import BandSet, get_band_set, register_band_set
from distributed_pz.survey.ingest.ingest_errors import IngestError
from distributed_pz.survey.store.schema import CLASS_NAMES

INPUT_FORMATS = ("fits", "parquet", "csv", "ascii")
CLASS_CODES = {name: code for code, name in CLASS_NAMES.items()}
DEFAULT_VALID_RANGE = (-10.0, 50.0)

_SECTIONS: dict[str, tuple[str, ...]] = {
    "band_set": ("name", "bands", "image_bands", "depth_5sigma"),
    "catalog": ("format", "hdu", "delimiter", "comment", "header", "names"),
    "columns": ("object_id", "object_id_hash", "ra", "dec", "z_spec"),
    "magnitudes": ("mag", "mag_err", "zeropoint", "not_detected", "not_observed", "valid_range"),
    "class": ("column", "values", "default"),
    "filter": ("z_spec_min", "z_spec_max", "column", "ranges"),
    "images": ("pixel_scale_arcsec", "psf_fwhm_arcsec", "files"),
}
_OPTIONAL_SECTIONS = ("catalog", "columns", "class", "filter")


@dataclass(frozen=True)
class CatalogFormat:
    """How to read a catalogue file.

    Parameters
    ----------
    format
        ``fits``, ``parquet``, ``csv`` or ``ascii`` (whitespace-separated text); ``None``
        means "decide from the file suffix".
    hdu
        Index of the FITS table HDU.
    delimiter
        Field separator of text files; ``None``: ``,`` for csv, runs of whitespace for ascii.
    comment
        Lines starting with this are skipped in text files.
    header
        Whether the first non-comment line of a text file names the columns.
    names
        Column names to use instead of the header (or, with ``header = false``, in its place).
    """

    format: str | None = None
    hdu: int = 1
    delimiter: str | None = None
    comment: str = "#"
    header: bool = True
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class ColumnMap:
    """A resolved column map: every catalogue column that ingest reads, and the tile attributes.

    Per-band tuples follow ``band_set.bands``. See the module docstring for the TOML keys.
    """

    name: str
    source: str
    description: str
    band_set: BandSet
    catalog: CatalogFormat
    object_id: str | None
    object_id_hash: bool
    ra: str | None
    dec: str | None
    z_spec: str | None
    mag_columns: tuple[str, ...]
    mag_err_columns: tuple[str, ...]
    zeropoint: Mapping[str, float]
    not_detected: tuple[float, ...]
    not_observed: tuple[float, ...]
    valid_range: tuple[float, float]
    class_column: str | None
    class_values: Mapping[str, int]
    class_default: int | None
    z_spec_min: float | None
    z_spec_max: float | None
    filter_column: str | None
    filter_ranges: tuple[tuple[float, float], ...]
    pixel_scale_arcsec: float
    psf_fwhm_arcsec: Mapping[str, float]
    image_files: Mapping[str, str]

    def columns_needed(self) -> list[str]:
        """Every catalogue column this map reads, each once, in a stable order."""
        names = [self.object_id, self.ra, self.dec, self.z_spec, self.class_column, self.filter_column]
        names += [c for pair in zip(self.mag_columns, self.mag_err_columns, strict=True) for c in pair]
        return list(dict.fromkeys(n for n in names if n is not None))

    def to_dict(self) -> dict[str, Any]:
        """The resolved map as JSON-ready data (ingest records it in the tile's attributes)."""
        return {f.name: _plain_data(getattr(self, f.name)) for f in fields(self)}


def _plain_data(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _plain_data(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain_data(v) for v in value]
    return value


def list_column_maps() -> list[str]:
    """Names of the column maps shipped with distributed_pz."""
    return sorted(p.name.removesuffix(".toml") for p in _shipped_dir().iterdir() if p.name.endswith(".toml"))


def load_column_map(name_or_path: str | Path) -> ColumnMap:
    """Load a shipped column map by name (``"kids_dr4"``) or a user's map by path.

    Raises
    ------
    IngestError
        The map does not exist, is not valid TOML, or a key is unknown, mistyped or inconsistent.
    """
    text, source, name = _map_text(name_or_path)
    try:
        spec = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise IngestError(f"column map {source}: invalid TOML ({exc})") from None
    return _resolve(spec, name, source)


def _shipped_dir() -> Traversable:
    return resources.files("distributed_pz") / "data" / "columnmaps"


def _map_text(name_or_path: str | Path) -> tuple[str, str, str]:
    path = Path(name_or_path)
    if isinstance(name_or_path, Path) or path.suffix == ".toml" or len(path.parts) > 1 or path.exists():
        try:
            return path.read_text(encoding="utf-8"), str(path), path.stem
        except OSError as exc:
            raise IngestError(f"column map {path}: cannot be read ({exc.strerror or exc})") from None
    shipped = _shipped_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        known = list_column_maps()
        close = difflib.get_close_matches(str(name_or_path), known, n=3)
        hint = f"; did you mean {close}?" if close else ""
        raise IngestError(
            f"no shipped column map {str(name_or_path)!r} (shipped: {known}){hint}; "
            "give a path to use your own .toml map"
        )
    return shipped.read_text(encoding="utf-8"), f"{name_or_path} (shipped)", str(name_or_path)


class _Spec:
    """Typed access to the sections of a parsed map; every error names the map, section and key."""

    def __init__(self, spec: Mapping[str, Any], source: str) -> None:
        self.spec, self.source = spec, source
        unknown = set(spec) - set(_SECTIONS) - {"description"}
        if unknown:
            raise self.error("", f"unknown sections or keys {sorted(unknown)}{_close(unknown, _SECTIONS)}")

    def description(self) -> str:
        text = self.spec.get("description", "")
        if not isinstance(text, str):
            raise self.error("", f"description must be a string, not {text!r}")
        return text

    def error(self, section: str, message: str) -> IngestError:
        where = f" [{section}]" if section else ""
        return IngestError(f"column map {self.source}{where}: {message}")

    def section(self, name: str) -> dict[str, Any]:
        table = self.spec.get(name)
        if table is None:
            if name in _OPTIONAL_SECTIONS:
                return {}
            raise self.error(name, "section is missing")
        if not isinstance(table, dict):
            raise self.error(name, "must be a table")
        unknown = set(table) - set(_SECTIONS[name])
        if unknown:
            raise self.error(name, f"unknown keys {sorted(unknown)}{_close(unknown, _SECTIONS[name])}")
        return table

    def get(self, section: str, key: str, kind: str, default: Any = ...) -> Any:
        table = self.section(section)
        if key not in table:
            if default is ...:
                raise self.error(section, f"key {key!r} is missing")
            return default
        value = table[key]
        check, wanted = _KINDS[kind]
        if not check(value):
            raise self.error(section, f"{key} must be {wanted}, not {value!r}")
        return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_KINDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "text": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "flag": (lambda v: isinstance(v, bool), "true or false"),
    "integer": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "number": (_is_number, "a number"),
    "texts": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "a list of strings"),
    "numbers": (lambda v: isinstance(v, list) and all(_is_number(x) for x in v), "a list of numbers"),
    "pair": (lambda v: isinstance(v, list) and len(v) == 2 and all(map(_is_number, v)), "[low, high]"),
    "pairs": (
        lambda v: isinstance(v, list) and all(_KINDS["pair"][0](p) for p in v),
        "a list of [low, high] pairs",
    ),
    "table": (lambda v: isinstance(v, dict), "a table"),
    "column": (lambda v: isinstance(v, str | dict), "a template with {band} or a table band -> column"),
    "per_band_number": (lambda v: _is_number(v) or isinstance(v, dict), "a number or a table band -> number"),
}


def _close(unknown: set[str], known) -> str:
    hints = {u: difflib.get_close_matches(u, list(known), n=1) for u in sorted(unknown)}
    said = [f"{u!r} -> {m[0]!r}" for u, m in hints.items() if m]
    return f" (did you mean {', '.join(said)}?)" if said else f" (known: {sorted(known)})"


def _resolve(spec: Mapping[str, Any], name: str, source: str) -> ColumnMap:
    s = _Spec(spec, source)
    band_set = _band_set(s)
    bands = band_set.bands
    mags, errs = (_per_band(s, "magnitudes", key, bands, "column", "text") for key in ("mag", "mag_err"))
    ra, dec = s.get("columns", "ra", "text", None), s.get("columns", "dec", "text", None)
    if (ra is None) != (dec is None):
        raise s.error("columns", "give both ra and dec, or neither")
    z_spec = s.get("columns", "z_spec", "text", None)
    z_min, z_max = (
        s.get("filter", "z_spec_min", "number", None),
        s.get("filter", "z_spec_max", "number", None),
    )
    if (z_min is not None or z_max is not None) and z_spec is None:
        raise s.error("filter", "z_spec_min / z_spec_max need [columns] z_spec")
    filter_column = s.get("filter", "column", "text", None)
    ranges = tuple(tuple(map(float, p)) for p in s.get("filter", "ranges", "pairs", []))
    if (filter_column is None) != (not ranges):
        raise s.error("filter", "column and ranges go together")
    if any(lo >= hi for lo, hi in ranges):
        raise s.error("filter", f"every range needs low < high: {ranges}")
    low, high = s.get("magnitudes", "valid_range", "pair", list(DEFAULT_VALID_RANGE))
    psf = _per_band(s, "images", "psf_fwhm_arcsec", bands, "table", "number", required=False)
    files = _per_band(s, "images", "files", bands, "table", "text", required=False)
    missing_psf = [b for b in band_set.image_bands if b not in psf]
    if missing_psf:
        raise s.error("images", f"psf_fwhm_arcsec lacks image bands {missing_psf}")
    class_column, class_values, class_default = _classes(s)
    return ColumnMap(
        name=name,
        source=source,
        description=s.description(),
        band_set=band_set,
        catalog=_catalog(s),
        object_id=s.get("columns", "object_id", "text", None),
        object_id_hash=s.get("columns", "object_id_hash", "flag", False),
        ra=ra,
        dec=dec,
        z_spec=z_spec,
        mag_columns=tuple(mags[b] for b in bands),
        mag_err_columns=tuple(errs[b] for b in bands),
        zeropoint=MappingProxyType(
            {
                b: float(v)
                for b, v in _per_band(
                    s, "magnitudes", "zeropoint", bands, "per_band_number", "number"
                ).items()
            }
        ),
        not_detected=tuple(map(float, s.get("magnitudes", "not_detected", "numbers", []))),
        not_observed=tuple(map(float, s.get("magnitudes", "not_observed", "numbers", []))),
        valid_range=(float(low), float(high)),
        class_column=class_column,
        class_values=MappingProxyType(class_values),
        class_default=class_default,
        z_spec_min=None if z_min is None else float(z_min),
        z_spec_max=None if z_max is None else float(z_max),
        filter_column=filter_column,
        filter_ranges=ranges,
        pixel_scale_arcsec=float(s.get("images", "pixel_scale_arcsec", "number")),
        psf_fwhm_arcsec=MappingProxyType({b: float(v) for b, v in psf.items()}),
        image_files=MappingProxyType(dict(files)),
    )


def _band_set(s: _Spec) -> BandSet:
    name = s.get("band_set", "name", "text")
    bands = s.get("band_set", "bands", "texts", None)
    if bands is None:
        try:
            return get_band_set(name)
        except KeyError as exc:
            raise s.error("band_set", f"{exc.args[0]}; or declare it here with bands = [...]") from None
    try:
        return register_band_set(
            BandSet(
                name=name,
                bands=tuple(bands),
                depth_5sigma=tuple(map(float, s.get("band_set", "depth_5sigma", "numbers", []))),
                image_bands=tuple(s.get("band_set", "image_bands", "texts", [])),
            )
        )
    except ValueError as exc:
        raise s.error("band_set", str(exc)) from None


def _per_band(
    s: _Spec,
    section: str,
    key: str,
    bands: tuple[str, ...],
    kind: str,
    value_kind: str,
    required: bool = True,
) -> dict[str, Any]:
    """A value per band from a ``{band}`` template, one number for all bands, or a band table."""
    value = s.get(section, key, kind, ... if required else {})
    if isinstance(value, str):
        if "{band}" not in value:
            raise s.error(section, f"{key} template {value!r} lacks '{{band}}'")
        return {b: value.replace("{band}", b) for b in bands}
    if not isinstance(value, dict):
        return dict.fromkeys(bands, value)
    unknown = [b for b in value if b not in bands]
    if unknown:
        raise s.error(section, f"{key}: unknown bands {unknown}; the band set has {list(bands)}")
    missing = [b for b in bands if b not in value]
    if required and missing:
        raise s.error(section, f"{key} lacks bands {missing}")
    check, wanted = _KINDS[value_kind]
    bad = {b: v for b, v in value.items() if not check(v)}
    if bad:
        raise s.error(section, f"{key}: values must be {wanted}, not {bad}")
    return value


def _classes(s: _Spec) -> tuple[str | None, dict[str, int], int | None]:
    column = s.get("class", "column", "text", None)
    if column is None:
        if s.section("class"):
            raise s.error("class", "key 'column' is missing")
        return None, {}, None
    values = s.get("class", "values", "table")
    default = s.get("class", "default", "text", None)
    named = {**values, **({} if default is None else {"default": default})}
    bad = {k: v for k, v in named.items() if v not in CLASS_CODES}
    if bad:
        raise s.error("class", f"unknown classes {bad}; known: {sorted(CLASS_CODES)}")
    codes = {str(k): CLASS_CODES[v] for k, v in values.items()}
    return column, codes, None if default is None else CLASS_CODES[default]


def _catalog(s: _Spec) -> CatalogFormat:
    fmt = s.get("catalog", "format", "text", None)
    if fmt is not None and fmt not in INPUT_FORMATS:
        raise s.error("catalog", f"format {fmt!r} is not one of {list(INPUT_FORMATS)}")
    return CatalogFormat(
        format=fmt,
        hdu=s.get("catalog", "hdu", "integer", 1),
        delimiter=s.get("catalog", "delimiter", "text", None),
        comment=s.get("catalog", "comment", "text", "#"),
        header=s.get("catalog", "header", "flag", True),
        names=tuple(s.get("catalog", "names", "texts", [])),
    )
