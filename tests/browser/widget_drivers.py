"""Drive each of the course's widgets the way a learner does, and check what the learner then sees.

One driver per builder of ``tmtlib.widgets``; each touches every control of its widget with the
mouse or the keyboard (drag a slider, pick from a dropdown, type into a text box) and waits, up to a
stated limit, for the visible output to change as it should. A failure names the notebook, the
widget and the control, the expected change, and what the output showed instead.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Playwright may be missing: the tests then skip instead of failing to import
    from playwright.sync_api import Locator, Page


# per interaction; the heaviest is one beam-search translation plus its heatmap, in quick mode
LIMIT_S = 30.0


@dataclass
class Interaction:
    notebook: str
    widget: str
    control: str
    action: str
    expectation: str
    seconds: float
    limit_s: float


class WidgetFailure(AssertionError):
    """A control did not change the widget's output as it should have."""


class Driver:
    """Shared gestures and the timed wait for a change, for the widget ``root`` of one notebook
    cell."""

    def __init__(
        self,
        page: Page,
        notebook: str,
        widget: str,
        root: Locator,
        settle: Callable[[], None] = lambda: None,
        limit_s: float = LIMIT_S,
    ):
        self.page, self.notebook, self.widget, self.root = page, notebook, widget, root
        self.settle, self.limit_s = settle, limit_s
        self.log: list[Interaction] = []

    # --- finding controls ---------------------------------------------------------------------

    def control(self, kind: str, description: str) -> Locator:
        """The control of CSS class ``widget-<kind>`` whose description label reads
        ``description``."""
        label = self.page.locator(
            ".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$")
        )
        found = self.root.locator(f".widget-{kind}").filter(has=label)
        if found.count() != 1:
            raise WidgetFailure(
                f"{self.where(description)}: expected one {kind} control, found {found.count()}"
            )
        return found

    def output_text(self) -> str:
        """The text of the widget's output area (of the whole widget, when it has none)."""
        outputs = self.root.locator(".widget-output")
        return (outputs.first if outputs.count() else self.root).inner_text().strip()

    def output_line(self, prefix: str) -> Callable[[], str]:
        """A reader of the output line that starts with ``prefix``."""

        def read() -> str:
            lines = [line for line in self.output_text().splitlines() if line.startswith(prefix)]
            return lines[0] if lines else ""

        return read

    def where(self, control: str) -> str:
        return f"{self.notebook} · {self.widget} · {control}"

    # --- gestures -----------------------------------------------------------------------------

    def drag_slider(self, description: str, fraction: float) -> str:
        """Drag the slider's handle with the mouse to ``fraction`` of its track; return the new
        readout."""
        slider = self.control("slider", description)
        track, handle = slider.locator(".noUi-target"), slider.locator(".noUi-handle")
        handle.scroll_into_view_if_needed()
        box, grip = track.bounding_box(), handle.bounding_box()
        self.page.mouse.move(grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2)
        self.page.mouse.down()
        self.page.mouse.move(
            box["x"] + fraction * box["width"], grip["y"] + grip["height"] / 2, steps=8
        )
        self.page.mouse.up()
        return slider.locator(".widget-readout").inner_text().strip()

    def step_slider(self, description: str, key: str = "ArrowRight") -> str:
        """Focus the slider's handle and press ``key`` (one step); return the new readout."""
        slider = self.control("slider", description)
        slider.locator(".noUi-handle").focus()
        slider.locator(".noUi-handle").press(key)
        return slider.locator(".widget-readout").inner_text().strip()

    def choose(self, description: str, option_index: int) -> str:
        """Pick option ``option_index`` of a dropdown; return its label."""
        select = self.control("dropdown", description).locator("select")
        # a closed <select> renders none
        label = select.locator("option").nth(option_index).text_content().strip()
        select.select_option(index=option_index)
        return label

    def type_text(self, description: str, text: str) -> None:
        """Replace the text in a text box with ``text``, as a learner pasting a sentence."""
        box = self.control("text", description).locator("input")
        box.click()
        box.fill(text)

    # --- the timed check ----------------------------------------------------------------------

    def expect(
        self, control: str, action: Callable[[], str], expectation: str, changed: Callable[[], bool]
    ) -> None:
        """Do ``action`` (it returns a description of what was done), wait for ``changed()``,
        then for the kernel to settle, as a learner waits for the output before the next move.

        Settling matters: the widgets' frontend sends at most one update per control at a time and
        holds back the rest, so a control moved next (another widget) can overtake the held-back
        value of the last one; its output must not be mistaken for the next move's."""
        start = time.monotonic()
        done = action()
        while not changed():
            self.raise_on_error(control, done)
            if time.monotonic() - start > self.limit_s:
                raise WidgetFailure(
                    f"{self.where(control)}: after {done}, expected {expectation} within "
                    f"{self.limit_s:.0f} s; the output shows:\n{self.output_text()}"
                )
            time.sleep(0.05)
        seconds = time.monotonic() - start
        self.settle()
        self.raise_on_error(control, done)
        self.log.append(
            Interaction(
                self.notebook,
                self.widget,
                control,
                done,
                expectation,
                seconds,
                self.limit_s,
            )
        )

    def raise_on_error(self, control: str, done: str) -> None:
        """Fail if the widget shows an error (a traceback a callback printed into its output)."""
        errors = self.root.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        if errors.count():
            raise WidgetFailure(
                f"{self.where(control)}: after {done}, the widget shows an error:\n"
                + "\n".join(errors.all_inner_texts())
            )

    def expect_line_change(self, control: str, action: Callable[[], str], *prefixes: str) -> None:
        """``action`` must change every output line starting with one of ``prefixes``."""
        readers = [self.output_line(prefix) for prefix in prefixes]
        before = [read() for read in readers]
        expectation = " and ".join(f"a different '{prefix.strip()}' line" for prefix in prefixes)
        self.expect(
            control,
            action,
            expectation,
            lambda: all(read() not in ("", old) for read, old in zip(readers, before)),
        )

    def mark_images(self) -> None:
        """Mark the images shown now, so that a new one can be told from them."""
        self.root.evaluate(
            "node => node.querySelectorAll('img').forEach(img => img.dataset.seen = '1')"
        )

    def new_image(self) -> bool:
        return self.root.locator("img:not([data-seen])").count() > 0

    def image_drawn(self) -> bool:
        """Whether the last image shown has more than one colour (a heatmap printed while it was
        still being drawn came out as one transparent rectangle)."""
        return self.root.evaluate(
            """node => { const img = [...node.querySelectorAll('img')].pop();
            if (!img || !img.complete || !img.naturalWidth) return false;
            const canvas = document.createElement('canvas');
            canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
            const context = canvas.getContext('2d'); context.drawImage(img, 0, 0);
            const pixels = new Uint32Array(context.getImageData(0, 0, canvas.width,
              canvas.height).data.buffer);
            return pixels.some(pixel => pixel !== pixels[0]); }"""
        )

    def image_source(self) -> str:
        """The data of the last image shown (a heatmap), to tell a redrawn one from a different
        one."""
        images = self.root.locator("img")
        return images.last.get_attribute("src") or "" if images.count() else ""


# --- one driver per widget builder ------------------------------------------------------------


def drive_noise_explorer(d: Driver) -> None:
    """Pick another sentence, then move each noise slider: the corrupted line must change each
    time."""
    d.expect_line_change(
        "sentence", lambda: f"choosing '{d.choose('sentence', 1)}'", "original:", "corrupted:"
    )
    for description, fraction in [
        ("mask p", 0.3),
        ("delete p", 0.2),
        ("infill", 0.3),
        ("shuffle k", 0.5),
    ]:
        d.expect_line_change(
            description,
            lambda c=description, f=fraction: f"dragging it to {d.drag_slider(c, f)}",
            "corrupted:",
            "noise:",
        )
    d.expect_line_change(
        "seed", lambda: f"dragging it to {d.drag_slider('seed', 0.5)}", "corrupted:"
    )


def drive_interpolation_slider(d: Driver) -> None:
    """Drag t to the middle, then to 1: each time a different sentence must be decoded."""
    decoded = d.root.locator(".widget-html").last  # the decoded line, below the slider

    for fraction in (0.5, 1.0):
        before = decoded.inner_text()
        d.expect(
            "t",
            lambda f=fraction: f"dragging it to {d.drag_slider('t', f)}",
            f"a decoded sentence other than {before!r}",
            lambda old=before: decoded.inner_text() not in ("", old),
        )


def drive_translator(d: Driver) -> None:
    """Type a sentence, add a reference, move the beam, switch the model: each time a translation
    and a redrawn heatmap that is not blank; new words for a new sentence, another heatmap for
    another model (two quick models may agree on the words, never on where they attend)."""

    def translation() -> str:
        return d.output_text().splitlines()[0] if d.output_text() else ""

    def retranslated(new_text: bool, new_map: bool) -> Callable[[], bool]:
        old_text, old_map = translation(), d.image_source()
        d.mark_images()

        def changed() -> bool:
            text, picture = translation(), d.image_source()
            redrawn = d.new_image() or picture != old_map  # a new <img>, or the old one redrawn
            return (
                redrawn
                and d.image_drawn()
                and text != ""
                and (text != old_text or not new_text)
                and (picture != old_map or not new_map)
            )

        return changed

    for control, action, new_text, new_map in [
        (
            "source",
            lambda: (
                d.type_text("source", "Two dogs are running through the snow.")
                or "typing a sentence"
            ),
            True,
            False,
        ),
        (
            "reference",
            lambda: (
                d.type_text("reference", "Zwei Hunde rennen durch den Schnee.")
                or "typing a reference"
            ),
            False,
            False,
        ),
        ("beam", lambda: f"dragging it to {d.drag_slider('beam', 0.0)}", False, False),
        ("model", lambda: f"choosing '{d.choose('model', 1)}'", False, True),
    ]:
        expectation = "a new translation" if new_text else "a redrawn output"
        expectation += " and a heatmap that is not blank" + (", another one" if new_map else "")
        d.expect(control, action, expectation, retranslated(new_text, new_map))
    if "chrF against the reference" not in d.output_text():
        raise WidgetFailure(
            f"{d.where('reference')}: no chrF line after typing a reference:\n{d.output_text()}"
        )


def drive_error_browser(d: Driver) -> None:
    """Step the rank with the keyboard, then drag it: each time another sentence must be shown."""
    d.expect_line_change(
        "rank", lambda: f"pressing → (rank {d.step_slider('rank')})", "#", "source:"
    )
    d.expect_line_change(
        "rank", lambda: f"dragging it to {d.drag_slider('rank', 0.5)}", "#", "source:"
    )


DRIVERS: dict[str, Callable[[Driver], None]] = {
    "noise_explorer": drive_noise_explorer,
    "interpolation_slider": drive_interpolation_slider,
    "translator": drive_translator,
    "error_browser": drive_error_browser,
}
