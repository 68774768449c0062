"""`nibble layout`: pictures of layouts and atoms, SVG output, and errors with a column."""
import re
import xml.etree.ElementTree as ElementTree


def test_mma_fragment_picture(nibble_cli):
    text = nibble_cli("layout", "mma.m16n8k16.a").stdout
    rows = [line for line in text.splitlines() if re.match(r"^\s*\d+ \|", line)]
    assert len(rows) == 16
    # Row 0: thread 0 holds columns 0,1 in registers 0,1 and columns 8,9 in registers 4,5.
    cells = rows[0].split("|")[1].split()
    assert cells[:2] == ["T0:r0", "T0:r1"] and cells[8:10] == ["T0:r4", "T0:r5"]
    # Row 8 holds registers 2 and 3 of the same threads as row 0.
    assert rows[8].split("|")[1].split()[:2] == ["T0:r2", "T0:r3"]


def test_svg_is_well_formed(nibble_cli, tmp_path):
    svg = tmp_path / "tile.svg"
    nibble_cli("layout", "S[(64,64):(64@smem,1@smem)]", "--dtype", "f16", "--swizzle", "128B", "--svg", svg)
    root = ElementTree.parse(svg).getroot()
    assert root.tag.endswith("svg")
    assert len(root.findall(".//{http://www.w3.org/2000/svg}rect")) >= 64 * 64


def test_bad_layout_names_the_column(nibble_cli):
    result = nibble_cli("layout", "S[(4,8):(8@lane,1@lanex)]", check=False)
    assert result.returncode == 1
    assert "column 19" in result.stderr and "unknown axis 'lanex'" in result.stderr
