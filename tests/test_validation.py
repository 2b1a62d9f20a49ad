"""Input forms: JSON, JSON Lines and CSV; every rejection names its place and field."""

from __future__ import annotations

import pytest

from watcher.errors import InputTooLarge
from watcher.snapshot import Snapshot
from watcher.validation import Format, Rejection, read_records, validate


def verdicts(body: str, fmt: Format = Format.AUTO) -> list[Snapshot | Rejection]:
    return [r if isinstance(r, Rejection) else validate(r)
            for r in read_records(body.encode(), fmt)]


class TestSnapshot:
    def test_percent_strings_become_fractions(self):
        [snap] = verdicts('{"store":"s","platform":"p","period":"2026-10",'
                          '"metrics":{"dispute_rate":"3.5%","gmv":"1,200"}}')
        assert isinstance(snap, Snapshot)
        assert snap.metrics == {"dispute_rate": 0.035, "gmv": 1200.0}

    @pytest.mark.parametrize(("metrics", "field"), [
        ('{"dispute_rate": 3.5}', "metrics.dispute_rate"),
        ('{"penalty_count": -1}', "metrics.penalty_count"),
        ('{"gmv": "lots"}', "metrics.gmv"),
        ('{"gmv": true}', "metrics.gmv"),
        ("{}", "metrics"),
    ])
    def test_bad_values_name_the_field(self, metrics: str, field: str):
        [rejection] = verdicts(
            f'{{"store":"s","platform":"p","period":"2026-10","metrics":{metrics}}}')
        assert isinstance(rejection, Rejection) and rejection.field == field

    @pytest.mark.parametrize(("metrics", "error"), [
        ('{"cs_first_response_hours": 1e308}', "must be within [0, 8760], got 1e+308"),
        ('{"preparation_days": 400}', "must be within [0, 366], got 400"),
        ('{"gmv": 1e16}', "must be within [0, 1e+15], got 1e+16"),
        ('{"orders": 1e300}', "must be within [0, 1e+15], got 1e+300"),
    ])
    def test_no_metric_is_unbounded(self, metrics: str, error: str):
        [rejection] = verdicts(
            f'{{"store":"s","platform":"p","period":"2026-10","metrics":{metrics}}}')
        assert isinstance(rejection, Rejection) and rejection.error.endswith(error)

    def test_every_indicator_has_a_finite_range(self):
        from watcher.indicators import INDICATORS, RAW_FIELDS
        for indicator in [*INDICATORS.values(), *RAW_FIELDS.values()]:
            assert indicator.ceiling <= 1e15, indicator.id

    @pytest.mark.parametrize("period", ["2026-13", "2026-Q5", "26-10", "2026/10"])
    def test_unknown_period_forms_are_rejected(self, period: str):
        [rejection] = verdicts(
            f'{{"store":"s","platform":"p","period":"{period}","metrics":{{"gmv":1}}}}')
        assert isinstance(rejection, Rejection) and rejection.field == "period"

    @pytest.mark.parametrize(("period", "kind"), [
        ("2026-10-01", "day"), ("2026-10", "month"), ("2026-Q3", "quarter"), ("2026", "year")])
    def test_the_four_period_forms(self, period: str, kind: str):
        [snap] = verdicts(
            f'{{"store":"s","platform":"p","period":"{period}","metrics":{{"gmv":1}}}}')
        assert isinstance(snap, Snapshot) and snap.period.kind.value == kind

    def test_a_missing_required_field_is_named(self):
        [rejection] = verdicts('{"platform":"p","period":"2026-10","metrics":{"gmv":1}}')
        assert isinstance(rejection, Rejection) and rejection.field == "store"


class TestFormats:
    def test_json_lines_name_the_line(self):
        body = ('{"store":"s","platform":"p","period":"2026-10","metrics":{"gmv":1}}\n'
                "\n{not json\n")
        first, second = verdicts(body)
        assert isinstance(first, Snapshot)
        assert isinstance(second, Rejection) and second.location == "line 3"

    def test_a_json_array_names_the_record(self):
        body = ('[{"store":"s","platform":"p","period":"2026-10","metrics":{"gmv":1}},'
                '{"store":"s","platform":"p","period":"x","metrics":{"gmv":1}}]')
        _, rejection = verdicts(body)
        assert isinstance(rejection, Rejection) and rejection.location == "record 2"

    def test_csv_columns(self):
        body = ("store,platform,period,operator,metrics.dispute_rate,targets.gmv,"
                "targets.odr,targets.odr.comparator,segment.special_category,metrics.gmv\n"
                "s1,shopee,2026-10,li,3.5%,100,0.01,<,true,90\n"
                "s2,shopee,2026-10,li,abc,,,,,\n")
        snap, rejection = verdicts(body, Format.CSV)
        assert isinstance(snap, Snapshot)
        assert snap.metrics == {"dispute_rate": 0.035, "gmv": 90.0}
        assert snap.targets["gmv"].value == 100 and snap.targets["odr"].comparator == "<"
        assert snap.segment == {"special_category": True}
        assert isinstance(rejection, Rejection)
        assert (rejection.location, rejection.field) == ("line 3", "metrics.dispute_rate")

    def test_oversized_bodies_are_refused_with_the_limit(self):
        with pytest.raises(InputTooLarge, match="limit is 10"):
            list(read_records(b"x" * 11, max_bytes=10))


class TestCanonicalCsv:
    """A snapshot CSV row the reader cannot read as written rejects that row alone."""

    HEADER = "store,platform,period,metrics.gmv,note"

    def test_an_oversized_cell_rejects_its_line_only(self):
        from watcher.limits import SHEET_CELL_MAX_BYTES

        body = "\n".join([self.HEADER, f"a,amazon,2026-10,1,{'x' * (SHEET_CELL_MAX_BYTES + 1)}",
                          "b,amazon,2026-10,2,ok", ""])
        refused, good = verdicts(body, Format.CSV)
        assert isinstance(refused, Rejection) and (refused.location, refused.field) == (
            "line 2", "note")
        assert refused.error.startswith(f"cell over {SHEET_CELL_MAX_BYTES} bytes")
        assert isinstance(good, Snapshot) and good.store == "b"

    def test_an_unterminated_quote_does_not_swallow_the_lines_after_it(self):
        body = "\n".join([self.HEADER, 'a,amazon,2026-10,1,"broken', "b,amazon,2026-10,2,ok",
                          ""])
        refused, good = verdicts(body, Format.CSV)
        assert isinstance(refused, Rejection) and refused.location == "line 2"
        assert refused.error.startswith("unterminated quote starting at line 2")
        assert isinstance(good, Snapshot) and good.store == "b"
