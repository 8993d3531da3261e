"""The card kit every card shares: tables people's text cannot break, versions, language tags, no local paths."""

from __future__ import annotations

from importlib import metadata

from data_tools.cards import (
    language_tags,
    library_versions,
    md_table,
    md_text,
    scrub_local_paths,
    size_category,
)


def test_md_table_escapes_html_and_pipes_and_formats_numbers():
    table = md_table(
        ["k", "v"], [("a|b", "<img src=x onerror=alert(1)>"), ("loss", 0.123456789)], number="{:.3g}".format
    )
    lines = table.splitlines()
    assert lines[:2] == ["| k | v |", "|---|---|"]
    assert lines[2] == r"| a\|b | &lt;img src=x onerror=alert(1)&gt; |"
    assert lines[3] == "| loss | 0.123 |"
    assert md_table(["group", "images"], [("MX", 3)], right=[1]).splitlines()[1] == "|---|---:|"


def test_md_text_shows_markup_as_text():
    assert md_text("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;"
    assert md_text("[link](http://x) *y*\nz") == r"\[link\](http://x) \*y\* z"


def test_library_versions_lists_installed_ones_in_order_and_leaves_out_the_rest():
    found = library_versions(["pyyaml", "no-such-library-mirada", "pillow"])
    assert list(found) == ["pyyaml", "pillow"]
    assert found["pillow"] == metadata.version("pillow")


def test_language_tags_are_primary_subtags_by_frequency():
    assert language_tags({"pt-BR": 1, "es-MX": 3, "es-ES": 2}) == ["es", "pt"]
    assert language_tags({"pt-BR": 4, "es-MX": 3}) == ["pt", "es"]
    assert language_tags(["gl", "ca-ES", "(none)"], skip=["(none)"]) == ["ca", "gl"]


def test_scrub_keeps_urls_and_names_and_drops_directories():
    text = "load_from_disk('/tmp/ws/exports/prefs/t_image_dpo') see https://huggingface.co/a/b and C:\\Users\\ana\\ws"
    assert scrub_local_paths(text) == "load_from_disk('t_image_dpo') see https://huggingface.co/a/b and ws"
    assert scrub_local_paths("model_name_or_path=/home/ana/models/tiny") == "model_name_or_path=tiny"


def test_size_category_buckets():
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"
