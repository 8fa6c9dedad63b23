"""The situation brief as a person sees it: ``fengqiao brief`` writes the page, Debian's headless
Chromium renders it, and the screenshot shows the charts, in the colours of what they count."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from streams.reports.brief import EVENT_COLOUR, HOTSPOT_COLOUR, LEVEL_COLOURS
from tests.integration.test_up_command import FENGQIAO, env_for
from tests.seed import seeded_data_dir

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return seeded_data_dir(tmp_path_factory.mktemp("brief"))


def screenshot(data: Path, centre: str) -> dict[str, int]:
    """Pixels of each chart colour in the rendered brief of ``centre`` for the seeded week."""
    page, png = data / f"brief-{centre}.html", data / f"brief-{centre}.png"
    done = subprocess.run([FENGQIAO, "brief", "--centre", centre, "--from", "2026-11-16", "--to", "2026-11-21",
                           "--out", str(page)], env=env_for(data), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--window-size=1000,1800", f"--screenshot={png}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    colours = {"reports": EVENT_COLOUR, "hot spots": HOTSPOT_COLOUR, **LEVEL_COLOURS}
    wanted = {tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)): name for name, c in colours.items()}
    counts = dict.fromkeys(colours, 0)
    for count, rgb in Image.open(png).convert("RGB").getcolors(maxcolors=1 << 20):
        if rgb in wanted:
            counts[wanted[rgb]] += count
    return counts


@pytest.mark.skipif(CHROMIUM is None, reason="make test installs Debian's chromium")
def test_the_brief_shows_its_charts(data):
    district = screenshot(data, "210202")  # 中山区: reports, an orange and a yellow signal, hot spots
    assert district["reports"] > 2000 and district["hot spots"] > 2000
    assert district["orange"] > 2000 and district["yellow"] > 1000
    community = screenshot(data, "210202005001")  # the fire hazard's community: orange only
    assert community["orange"] > 2000 and community["yellow"] < 200  # the yellow left is the legend's swatch
    assert community["reports"] < district["reports"]
