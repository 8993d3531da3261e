"""What people typed reaches the report and the card as text: group names are escaped, captions drawable."""

from __future__ import annotations

from eval.charts import _printable
from eval.report import metric_table


def test_group_names_are_text_in_metric_tables():
    entry = {"value": 12.5, "ci_low": 10.0, "ci_high": 15.0}
    report = {
        "results": {
            "base": {
                "by_category": {
                    "<img src=x onerror=alert(1)>": {
                        "small": True,
                        "n_images": 3,
                        "metrics": {"chrf++": entry},
                    },
                    "comida | bebida": {"small": False, "n_images": 12, "metrics": {"chrf++": entry}},
                }
            }
        }
    }
    table = metric_table(report, "base", "by_category", ["chrf++"])
    assert "<img" not in table and "&lt;img" in table
    rows = table.splitlines()[2:]
    assert all(
        row.count(" | ") == 2 for row in [r.replace("\\|", "") for r in rows]
    )  # the | stays in its cell
    assert "⚠ small" in rows[0] and "12.50 [10.00, 15.00]" in rows[1]


def test_captions_drawn_in_charts_drop_control_characters():
    assert _printable("Tacos\x1b al\ufffd pastor\n") == "Tacos· al· pastor\n"
    assert _printable(None) == ""
