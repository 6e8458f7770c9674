"""The sandbox in a real browser: headless Chromium (Debian's package) driven by Playwright,
a person running an incident from declaration to postmortem with clicks and typed commands.

Skips, saying why, where /usr/bin/chromium is missing; `.ci/run` installs it."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest

from bot.sandbox import Sandbox
from tests.support import ROOT, settled, until

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = ROOT / "docs" / "sandbox.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

playwright_api = pytest.importorskip("playwright.async_api")
expect = playwright_api.expect
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Chromium is not installed (apt-get install chromium)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def sandbox(tmp_path: Path) -> AsyncIterator[tuple[Sandbox, str]]:
    box = Sandbox(
        port=free_port(),
        # A reminder a few seconds after declaring, so one arrives during the test.
        reminder_minutes=4 / 60,
        database_url=f"sqlite:///{tmp_path / 'sandbox.db'}",
        options={"reminder_sync_seconds": 0.5},
    )
    url = await box.start()
    yield box, url
    await box.stop()


@pytest.fixture
async def page(sandbox: tuple[Sandbox, str]) -> AsyncIterator[Page]:
    async with playwright_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = await browser.new_page(viewport={"width": 1200, "height": 900})
        page.set_default_timeout(15_000)
        await page.goto(sandbox[1])
        yield page
        await browser.close()


@needs_chromium
async def test_an_incident_from_declaration_to_postmortem_in_the_browser(
    sandbox: tuple[Sandbox, str], page: Page
) -> None:
    box, _ = sandbox
    p = page  # an async Playwright Page
    await expect(p.get_by_text("Local sandbox", exact=False).first).to_be_visible()
    await expect(p.get_by_label("Acting as")).to_have_value("U0ALICE")

    composer = p.get_by_role("textbox", name="Message")
    # The declare form: the bot's refusal of a blank title shows under the field.
    await composer.fill("/incident declare")
    await composer.press("Enter")
    form = p.get_by_role("dialog", name="Declare an incident")
    await form.get_by_label("Title").fill("   ")
    await form.get_by_role("button", name="Declare").click()
    await expect(form.get_by_role("alert").first).to_contain_text("title")
    await form.get_by_role("button", name="Cancel").click()
    await expect(form).to_be_hidden()

    # Declare from the composer.
    await composer.fill("/incident declare sev3 Checkout is slow")
    await composer.press("Enter")
    await expect(p.get_by_text("Only visible to you").first).to_be_visible()
    await p.get_by_role("button", name=re.compile("inc-1-checkout-is-slow")).click()
    # The pinned message is the incident card.
    card = p.locator("article", has=p.get_by_text("Pinned", exact=False)).first
    await expect(card).to_contain_text("Checkout is slow")
    await expect(card).to_contain_text("Pinned")

    # Severity from the card's menu, the commander with the user picker.
    await card.get_by_label("Change severity").select_option("SEV1")
    await expect(p.get_by_text("raised INC-1 from SEV3").first).to_be_visible()
    await card.get_by_label("Assign Incident Commander").select_option("U0BOB")
    await expect(p.get_by_text("is now the Incident Commander").first).to_be_visible()

    # A reminder arrives and is snoozed.
    reminder = p.locator("article", has_text="needs a status update").first
    await expect(reminder).to_be_visible(timeout=20_000)
    await reminder.get_by_role("button", name="Snooze 15 min").click()
    await until(lambda: _snoozed(box), timeout=10, message="the reminder snoozed")

    # An update through the modal: a blank summary is refused under its field.
    await card.get_by_role("button", name="Post update").click()
    dialog = p.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_label("Summary").fill("Rolled back the 14:05 deploy; errors falling.")
    await dialog.get_by_label("Status").select_option("monitoring")
    await dialog.get_by_role("button", name="Post update").click()
    await expect(dialog).to_be_hidden()
    await expect(p.get_by_text("Rolled back the 14:05 deploy").first).to_be_visible()

    # A message pinned with :pushpin:, another put on the timeline with the shortcut.
    await composer.fill("Found it: the cache TTL was set to 0 in the deploy")
    await composer.press("Enter")
    message = p.locator("article", has_text="cache TTL was set to 0").first
    await message.get_by_text("More actions").click()
    await message.get_by_role("button", name="React with :pushpin:").click()
    await expect(message).to_contain_text(":pushpin: 1")
    await composer.fill("Customer tickets are slowing down")
    await composer.press("Enter")
    other = p.locator("article", has_text="Customer tickets are slowing down").first
    await other.get_by_text("More actions").click()
    await other.get_by_role("button", name="Add to incident timeline").click()
    await until(lambda: _on_timeline(box, "Customer tickets"), timeout=10, message="shortcut")
    await until(lambda: _on_timeline(box, "cache TTL"), timeout=10, message="pushpin")

    await _screenshot(box, p, card)

    # The App Home: the open incident (Bob commands it now), with the Declare button.
    await p.get_by_role("button", name="🏠 Home").click()
    home = p.get_by_role("region", name="Conversation")
    await expect(home).to_contain_text("Open incidents (1)", timeout=10_000)
    await expect(home).to_contain_text("INC-1 Checkout is slow")
    await expect(home).to_contain_text("Commander @Bob Baker")
    await expect(home.get_by_role("button", name="Declare incident")).to_be_visible()
    await p.get_by_role("button", name=re.compile("inc-1-checkout-is-slow")).click()

    # Resolve through the confirmation modal, then compile the postmortem and open it.
    await card.get_by_role("button", name="Resolve").click()
    dialog = p.get_by_role("dialog")
    await dialog.get_by_label("How was it resolved?").fill("Cache TTL restored; error rate normal.")
    await dialog.get_by_role("button", name="Resolve").click()
    await expect(dialog).to_be_hidden()
    await expect(card).to_contain_text("Resolved")
    await composer.fill("/incident postmortem")
    await composer.press("Enter")
    link = p.get_by_role("link", name=re.compile("postmortem", re.IGNORECASE)).first
    await expect(link).to_be_visible(timeout=20_000)
    async with p.context.expect_page() as opened:
        await link.click()
    draft = await opened.value
    await expect(draft.locator("body")).to_contain_text("# INC-1")
    await expect(draft.locator("body")).to_contain_text("Cache TTL restored")


def _other_address() -> str | None:
    """This machine's address on its network, if it has one besides loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent for UDP
        except OSError:
            return None
        address = str(s.getsockname()[0])
    return None if address.startswith("127.") else address


@needs_chromium
async def test_a_commands_own_reply_is_shown_to_that_person_with_its_emoji(
    sandbox: tuple[Sandbox, str], page: Page
) -> None:
    """What the bot answers at once (help, a refusal, "Declaring…") shows as Slack shows
    it: only to the person who typed the command, emoji drawn rather than as :codes:."""
    p = page  # an async Playwright Page
    composer = p.get_by_role("textbox", name="Message")
    await composer.fill("/incident help")
    await composer.press("Enter")
    answer = p.locator("article.ephemeral", has_text="Incident bot").first
    await expect(answer).to_be_visible()
    await expect(answer).to_contain_text("Only visible to you")
    await expect(answer).to_contain_text("📌")  # the timeline emoji, :pushpin:

    await composer.fill("/incident declare sev1")
    await composer.press("Enter")
    refusal = p.locator("article.ephemeral", has_text="⚠️").first
    await expect(refusal).to_be_visible()
    await expect(refusal).to_contain_text("title")

    await composer.fill("/incident declare Payments are failing")
    await composer.press("Enter")
    await expect(p.get_by_text("⏳ Declaring Payments are failing").first).to_be_visible()
    assert ":warning:" not in await p.locator("main").inner_text()
    assert ":hourglass_flowing_sand:" not in await p.locator("main").inner_text()

    # Someone else sees none of it.
    await p.get_by_label("Acting as").select_option("U0BOB")
    await expect(p.get_by_text("Declaring Payments are failing")).to_have_count(0)
    await expect(p.locator("article.ephemeral", has_text="Incident bot")).to_have_count(0)


@needs_chromium
async def test_typed_markup_and_script_are_shown_as_typed_and_never_run(
    sandbox: tuple[Sandbox, str], page: Page
) -> None:
    """Markup typed into the composer, in a message or in an incident's title, reaches
    the bot escaped as Slack's client sends it and shows exactly as typed: no element is
    made of it and no script runs."""
    p = page  # an async Playwright Page
    composer = p.get_by_role("textbox", name="Message")
    typed = '<img src=x onerror="window.pwned=1"> & <b>bold</b> <script>window.pwned=2</script>'
    await composer.fill(typed)
    await composer.press("Enter")
    message = p.locator("article", has_text="<img src=x").first
    await expect(message).to_contain_text(typed)

    await composer.fill('/incident declare <img src=y onerror="window.pwned=3"> is down')
    await composer.press("Enter")
    await p.get_by_role("button", name=re.compile("inc-1-")).click()
    card = p.locator("article", has=p.get_by_text("Pinned", exact=False)).first
    await expect(card).to_contain_text('<img src=y onerror="window.pwned=3"> is down')

    assert await p.evaluate("window.pwned") is None
    assert await p.locator("main img, main b, main script").count() == 0


# The channel's messages as the sandbox has them now, as the page keeps what it shows.
LATEST = """async () => {
  const query = new URLSearchParams({ user: state.user || "", channel: state.channel });
  const data = await (await fetch(`/sandbox/state?${query}`)).json();
  return JSON.stringify([state.channel, data.messages, data.files]);
}"""


async def _screenshot(box: Sandbox, page: Page, card: Locator) -> None:
    """The card for the README. The page redraws the channel whenever its messages change,
    which would detach the card mid-way: taken once the bot has settled and the page shows
    what it left, so nothing redraws it meanwhile."""
    await settled(box.app)
    latest = await page.evaluate(LATEST)
    await page.wait_for_function("latest => state.shown.messages === latest", arg=latest)
    await card.screenshot(path=str(SCREENSHOT))


async def _snoozed(box: Sandbox) -> bool:
    entries = await box.app.store.timeline(1)
    return any(e.kind == "snooze" for e in entries)


async def _on_timeline(box: Sandbox, text: str) -> bool:
    entries = await box.app.store.timeline(1)
    return any(text in (e.text or "") or text in str(e.data or "") for e in entries)


async def test_the_sandbox_command_serves_the_page_on_localhost_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DATABASE_"))}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "sandbox",
        "--port",
        str(port),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert f"open http://127.0.0.1:{port}" in line
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/") as response,
        ):
            assert response.status == 200
            assert "local sandbox" in (await response.text()).lower()
        # Only on the loopback interface: this machine's other address is refused.
        address = _other_address()
        if address is not None:
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((address, port)) != 0
        assert (tmp_path / "incident-bot-sandbox.db").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
    err = (await proc.stderr.read()).decode() if proc.stderr else ""
    assert code == 0, err
    assert "[local sandbox]" in err
