// The sandbox page: a small stand-in for Slack's client. It reads the workspace from the
// local Slack stand-in and sends what a person does to the bot as Slack would.
"use strict";

const state = { user: null, channel: "C0GENERAL", data: null, shown: {}, view: null };
const $ = (id) => document.getElementById(id);
// The nav entry for the bot's App Home tab (not a channel).
const HOME = "home";

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "html") node.innerHTML = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function notice(text) { $("notice").textContent = text || ""; }

async function api(path, body) {
  const response = await fetch(`/sandbox/${path}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: state.user, ...body }),
  });
  const answer = await response.json().catch(() => ({}));
  notice(response.ok ? "" : answer.error || `The sandbox answered ${response.status}`);
  await poll();
  return answer;
}

// --- Slack's markup, as Slack's client shows it -------------------------------------------

// Slack's text arrives with &, < and > escaped already (&amp; &lt; &gt;); anything else
// that could be markup is escaped here, so no text ever becomes an element.
function escapeHtml(text) {
  return text
    .replace(/&(?!(amp|lt|gt|quot|#\d+);)/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function pad(n) { return String(n).padStart(2, "0"); }

function slackDate(epoch, format, fallback) {
  const when = new Date(Number(epoch) * 1000);
  if (Number.isNaN(when.getTime())) return fallback;
  const time = `${pad(when.getHours())}:${pad(when.getMinutes())}`;
  const day = when.toLocaleDateString("en-US", { month: "long", day: "numeric", year: "numeric" });
  const short = when.toLocaleDateString("en-US", { month: "short", day: "numeric", year: "numeric" });
  const seconds = Math.round((Date.now() - when.getTime()) / 1000);
  const ago = seconds < 60 ? "just now" : seconds < 3600 ? `${Math.round(seconds / 60)} minutes ago`
    : `${Math.round(seconds / 3600)} hours ago`;
  const values = {
    date_num: when.toISOString().slice(0, 10), date: day, date_short: short,
    date_long: when.toLocaleDateString("en-US", { weekday: "long", month: "long", day: "numeric", year: "numeric" }),
    date_pretty: day, date_short_pretty: short, date_long_pretty: day,
    time, time_secs: `${time}:${pad(when.getSeconds())}`, ago,
  };
  return format.replace(/\{(\w+)\}/g, (m, key) => values[key] ?? m);
}

function token(inner) {
  const [target, label] = [inner.split("|")[0], inner.split("|").slice(1).join("|")];
  const names = state.data ? state.data.names : {};
  const channels = state.data ? state.data.channel_names : {};
  if (target.startsWith("@")) {
    const name = names[target.slice(1)] || label || target.slice(1);
    return `<span class="mention">@${escapeHtml(name)}</span>`;
  }
  if (target.startsWith("#")) {
    return `<span class="mention">#${escapeHtml(channels[target.slice(1)] || label || target.slice(1))}</span>`;
  }
  if (target.startsWith("!date^")) {
    const [, epoch, format] = target.split("^");
    return escapeHtml(slackDate(epoch, format || "{date}", label));
  }
  if (target.startsWith("!subteam^")) return `<span class="mention">${escapeHtml(label || "@group")}</span>`;
  if (target.startsWith("!")) return `<span class="mention">@${escapeHtml(target.slice(1))}</span>`;
  if (/^(https?:|mailto:)/i.test(target)) {
    return `<a href="${escapeHtml(target)}" target="_blank" rel="noopener noreferrer">${escapeHtml(label || target)}</a>`;
  }
  return escapeHtml(label || target);
}

// Emoji shortcodes as Slack's client draws them (the sandbox serves the names, from the
// emoji package); an unknown :name: stays as it is, as in Slack.
let EMOJI = {};
fetch("/sandbox/emoji").then((r) => r.json()).then((names) => { EMOJI = names; state.shown = {}; poll(); });

function emojify(text) {
  return text.replace(/:([a-z0-9_+-]+):/g, (m, name) => EMOJI[name] || m);
}

function emphasis(text) {
  return emojify(text)
    .replace(/`([^`\n]+)`/g, "<code>$1</code>")
    .replace(/(^|[^\w*])\*([^*\n]+)\*(?!\w)/g, "$1<strong>$2</strong>")
    .replace(/(^|[^\w_])_([^_\n]+)_(?!\w)/g, "$1<em>$2</em>")
    .replace(/(^|[^\w~])~([^~\n]+)~(?!\w)/g, "$1<del>$2</del>");
}

function mrkdwn(text) {
  if (!text) return "";
  const parts = [];
  const tokens = /<([^<>\n]+)>/g;
  let last = 0;
  let match;
  while ((match = tokens.exec(text))) {
    parts.push(emphasis(escapeHtml(text.slice(last, match.index))));
    parts.push(token(match[1]));
    last = tokens.lastIndex;
  }
  parts.push(emphasis(escapeHtml(text.slice(last))));
  return parts.join("").replace(/\n/g, "<br>");
}

function textObject(obj) {
  if (!obj) return el("span");
  if (obj.type === "mrkdwn") return el("span", { html: mrkdwn(obj.text) });
  // plain_text draws emoji too, unless it says `emoji: false`.
  return el("span", {}, obj.emoji === false ? obj.text : emojify(obj.text || ""));
}

// --- Block Kit -------------------------------------------------------------------------------

function optionsOf(element) {
  const plain = element.options || [];
  const grouped = (element.option_groups || []).flatMap((g) => g.options);
  return [...plain, ...grouped];
}

function send(where, element, extra) {
  const run = () => (where.view
    ? api("view_action", { view_id: where.view, action_id: element.action_id, ...extra, inputs: collectInputs() })
    : api("action", { channel: where.channel, ts: where.ts, action_id: element.action_id, ...extra }));
  const confirm = element.confirm;
  if (confirm && !window.confirm(`${confirm.title?.text || "Are you sure?"}\n${confirm.text?.text || ""}`)) return;
  run();
}

function labelOf(element, fallback) {
  return element.placeholder?.text || fallback;
}

function interactive(element, where) {
  switch (element.type) {
    case "button": {
      const style = element.style ? ` ${element.style}` : "";
      return el("button", { type: "button", class: `el${style}`, onclick: () => send(where, element, { value: element.value }) },
        element.text?.text || "Button");
    }
    case "static_select":
    case "overflow": {
      const label = element.type === "overflow" ? "More options" : labelOf(element, "Choose an option");
      const select = el("select", { "aria-label": label, onchange: (e) => e.target.value && send(where, element, { selected_option: e.target.value }) },
        el("option", { value: "" }, label),
        optionsOf(element).map((o) => el("option", { value: o.value, selected: element.initial_option?.value === o.value }, o.text.text)));
      return select;
    }
    case "users_select": {
      const label = labelOf(element, "Choose a person");
      return el("select", { "aria-label": label, onchange: (e) => e.target.value && send(where, element, { selected_user: e.target.value }) },
        el("option", { value: "" }, label),
        (state.data?.people || []).map((p) => el("option", { value: p.id, selected: element.initial_user === p.id }, p.name)));
    }
    default:
      return el("span", { class: "block-context" }, `(${element.type})`);
  }
}

function renderBlock(block, where) {
  switch (block.type) {
    case "header":
      return el("div", { class: "block-header", role: "heading", "aria-level": "3" }, block.text?.text);
    case "divider":
      return el("hr");
    case "context":
      return el("div", { class: "block-context" },
        (block.elements || []).map((e) => (e.type === "image" ? el("span", {}, `[${e.alt_text}]`) : textObject(e))));
    case "section": {
      const body = el("div", {},
        block.text ? el("div", {}, textObject(block.text)) : null,
        block.fields ? el("div", { class: "fields" }, block.fields.map(textObject)) : null);
      return el("div", { class: "section" }, body, block.accessory ? interactive(block.accessory, where) : null);
    }
    case "actions":
      return el("div", { class: "actions" }, (block.elements || []).map((e) => interactive(e, where)));
    case "image":
      return el("div", { class: "block-context" }, `[image: ${block.alt_text}]`);
    default:
      return null;
  }
}

// --- messages --------------------------------------------------------------------------------

function author(msg) {
  if (msg.ephemeral || msg.bot_id || msg.user === state.data.bot) return "incident-bot";
  return state.data.names[msg.user] || msg.username || msg.user || "someone";
}

function renderMessage(msg, inThread) {
  const where = { channel: state.channel, ts: msg.ts };
  const when = new Date(Number(msg.ts) * 1000);
  const meta = el("div", { class: "meta" },
    el("span", { class: "author" }, author(msg)),
    el("time", { datetime: when.toISOString() }, `${pad(when.getHours())}:${pad(when.getMinutes())}`),
    msg.ephemeral ? el("span", { class: "only-you" }, "Only visible to you") : null,
    msg.pinned ? el("span", { class: "pinned-label" }, "📌 Pinned") : null);
  const blocks = (msg.blocks || []).map((b) => renderBlock(b, where)).filter(Boolean);
  const body = blocks.length ? el("div", {}, blocks) : el("div", { html: mrkdwn(msg.text) });
  const files = (msg.files || []).map((f) => {
    const known = state.data.files[f.id] || {};
    return el("div", { class: "file" }, "📄 ", el("a", { href: known.url || "#", target: "_blank" }, `Open ${f.title || known.title || f.name}`));
  });
  const reactions = (msg.reactions || []).map((r) => el("span", { class: "block-context" }, ` :${r.name}: ${r.count}`));
  const more = msg.ephemeral ? null : el("details", { class: "more" },
    el("summary", {}, "More actions"),
    el("button", { type: "button", class: "el", onclick: () => api("react", { channel: state.channel, ts: msg.ts, reaction: "pushpin" }) }, "React with :pushpin:"),
    el("button", { type: "button", class: "el", onclick: () => api("shortcut", { channel: state.channel, ts: msg.ts }) }, "Add to incident timeline"));
  const node = el("article", { class: `message${msg.ephemeral ? " ephemeral" : ""}`, "data-ts": msg.ts, "aria-label": `Message from ${author(msg)}` },
    meta, body, files, reactions, more);
  if (!inThread && msg.thread && msg.thread.length) {
    node.append(el("div", { class: "thread", "aria-label": "Thread" }, msg.thread.map((r) => renderMessage(r, true))));
  }
  return node;
}

// --- modals ----------------------------------------------------------------------------------

function collectInputs() {
  const inputs = {};
  document.querySelectorAll("[data-action-id]").forEach((node) => {
    const id = node.dataset.actionId;
    if (node.type === "checkbox") {
      inputs[id] = inputs[id] || [];
      if (node.checked) inputs[id].push(node.value);
    } else if (node.multiple) {
      inputs[id] = [...node.selectedOptions].map((o) => o.value);
    } else if (node.value !== "") {
      inputs[id] = node.value;
    }
  });
  return inputs;
}

function inputElement(element, id, label) {
  const common = { id, "data-action-id": element.action_id };
  switch (element.type) {
    case "plain_text_input":
      return element.multiline
        ? el("textarea", { ...common, rows: 4, maxlength: element.max_length }, element.initial_value || "")
        : el("input", { ...common, type: "text", value: element.initial_value || "", maxlength: element.max_length });
    case "static_select":
      return el("select", common, el("option", { value: "" }, labelOf(element, "Choose")),
        optionsOf(element).map((o) => el("option", { value: o.value, selected: element.initial_option?.value === o.value }, o.text.text)));
    case "users_select":
      return el("select", common, el("option", { value: "" }, labelOf(element, "Choose a person")),
        (state.data?.people || []).map((p) => el("option", { value: p.id, selected: element.initial_user === p.id }, p.name)));
    case "multi_users_select":
      return el("select", { ...common, multiple: true },
        (state.data?.people || []).map((p) => el("option", { value: p.id, selected: (element.initial_users || []).includes(p.id) }, p.name)));
    case "checkboxes":
    case "radio_buttons":
      return el("div", { role: "group", "aria-label": label },
        (element.options || []).map((o, i) => el("label", {},
          el("input", { type: element.type === "checkboxes" ? "checkbox" : "radio", name: element.action_id, value: o.value, "data-action-id": element.action_id, id: `${id}-${i}` }),
          ` ${o.text.text}`)));
    default:
      return el("span", { class: "hint" }, `(${element.type})`);
  }
}

function renderModal(view) {
  const root = $("modal-root");
  root.replaceChildren();
  state.view = view ? `${view.id}:${view.hash}` : null;
  if (!view) return;
  const where = { view: view.id };
  const fields = (view.blocks || []).map((block, n) => {
    if (block.type !== "input") return renderBlock(block, where);
    const id = `field-${n}`;
    const input = inputElement(block.element, id, block.label.text);
    // Like Slack's client, a required field left empty is not submitted.
    if (!block.optional && ["INPUT", "TEXTAREA", "SELECT"].includes(input.tagName)) input.required = true;
    return el("div", { class: "field", "data-block-id": block.block_id },
      el("label", { for: id }, block.label.text, block.optional ? " (optional)" : ""),
      input,
      block.hint ? el("span", { class: "hint" }, block.hint.text) : null,
      el("span", { class: "error", role: "alert" }));
  });
  const close = () => api("close", { view_id: view.id });
  const submit = async (event) => {
    event.preventDefault();
    const answer = await api("submit", { view_id: view.id, inputs: collectInputs() });
    root.querySelectorAll(".error").forEach((n) => { n.textContent = ""; });
    for (const [blockId, message] of Object.entries(answer.errors || {})) {
      const field = root.querySelector(`[data-block-id="${CSS.escape(blockId)}"] .error`);
      if (field) field.textContent = message;
    }
  };
  const dialog = el("form", { class: "modal", role: "dialog", "aria-modal": "true", "aria-labelledby": "modal-title", onsubmit: submit },
    el("h2", { id: "modal-title" }, view.title?.text || ""),
    fields,
    el("footer", {},
      el("button", { type: "button", class: "el", onclick: close }, view.close?.text || "Cancel"),
      view.submit ? el("button", { type: "submit", class: "el primary" }, view.submit.text) : null));
  root.append(el("div", { class: "overlay" }, dialog));
  const first = dialog.querySelector("input, textarea, select");
  if (first) first.focus();
}

// --- the page --------------------------------------------------------------------------------

function changed(part, value) {
  const key = JSON.stringify(value);
  if (state.shown[part] === key) return false;
  state.shown[part] = key;
  return true;
}

function render() {
  const data = state.data;
  const people = $("acting-as");
  if (changed("people", data.people)) {
    people.replaceChildren(...data.people.map((p) => el("option", { value: p.id, selected: p.id === state.user }, p.name)));
  }
  if (changed("channels", [data.channels, state.channel])) {
    const home = el("li", {},
      el("button", { type: "button", "aria-current": state.channel === HOME ? "true" : "false", onclick: () => select(HOME) },
        "🏠 Home"));
    $("channels").replaceChildren(home, ...data.channels.map((c) => el("li", {},
      el("button", { type: "button", "aria-current": c.id === state.channel ? "true" : "false", onclick: () => select(c.id) },
        c.im ? c.name : `${c.private ? "🔒" : "#"} ${c.name}${c.archived ? " (archived)" : ""}`))));
  }
  $("composer").hidden = state.channel === HOME;
  if (state.channel === HOME) {
    $("channel-title").textContent = "Incident bot · Home";
    $("channel-topic").textContent = "The bot's App Home tab, as you see it";
    if (changed("messages", [HOME, data.home])) {
      const where = { view: data.home?.id };
      $("messages").replaceChildren(data.home
        ? el("div", { class: "home" }, (data.home.blocks || []).map((b) => renderBlock(b, where)).filter(Boolean))
        : el("p", {}, "Opening…"));
    }
  }
  const current = data.channels.find((c) => c.id === state.channel);
  if (state.channel !== HOME) {
    $("channel-title").textContent = current ? (current.im ? current.name : `#${current.name}`) : "";
    $("channel-topic").innerHTML = current ? mrkdwn(current.topic) : "";
  }
  if (state.channel !== HOME && changed("messages", [state.channel, data.messages, data.files])) {
    const pane = $("messages");
    const atBottom = pane.scrollHeight - pane.scrollTop - pane.clientHeight < 40;
    pane.replaceChildren(...data.messages.map((m) => renderMessage(m, false)));
    if (atBottom) pane.scrollTop = pane.scrollHeight;
  }
  const top = data.views.length ? data.views[data.views.length - 1] : null;
  const key = top ? `${top.id}:${top.hash}` : null;
  if (key !== state.view) renderModal(top);
}

async function poll() {
  const query = new URLSearchParams({ user: state.user || "", channel: state.channel });
  const response = await fetch(`/sandbox/state?${query}`);
  state.data = await response.json();
  if (!state.user) state.user = state.data.people[0].id;
  render();
}

function select(channel) {
  state.channel = channel;
  notice("");
  // Opening the Home tab is an event Slack sends the bot, every time.
  if (channel === HOME) api("home", {});
  poll();
}

$("composer").addEventListener("submit", async (event) => {
  event.preventDefault();
  const box = $("message");
  const text = box.value.trim();
  if (!text) return;
  box.value = "";
  await api("send", { channel: state.channel, text });
});
$("message").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("composer").requestSubmit();
  }
});
$("acting-as").addEventListener("change", (event) => {
  state.user = event.target.value;
  state.shown = {};
  if (state.channel === HOME) api("home", {});
  poll();
});

poll();
setInterval(() => { poll().catch(() => notice("The sandbox is not answering; is it still running?")); }, 700);
