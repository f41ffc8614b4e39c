// The loader of a saved widget page (clip_widgets/widgets/static_page.py): runs each widget's module
// against an in-page model with the anywidget interface the modules use (get, set, on, off,
// save_changes, send). Modules are imported from blob: URLs, which a file:// page allows.
const reviver = (key, value) => {
  if (value && typeof value === "object" && typeof value.__cw_buffer__ === "string") {
    const bytes = Uint8Array.from(atob(value.__cw_buffer__), (c) => c.charCodeAt(0));
    return new DataView(bytes.buffer);
  }
  return value;
};
class PageModel {
  constructor(state, notice) { this.state = state; this.handlers = new Map(); this.notice = notice; }
  get(name) { return this.state[name]; }
  set(name, value) {
    const old = this.state[name];
    this.state[name] = value;
    if (old === value) return;
    const handlers = [...(this.handlers.get(`change:${name}`) || []), ...(this.handlers.get("change") || [])];
    for (const f of handlers) f();
  }
  on(event, handler) {
    for (const e of event.split(" ")) this.handlers.set(e, [...(this.handlers.get(e) || []), handler]);
  }
  off(event, handler) {
    for (const e of (event || "").split(" ")) {
      if (!handler) this.handlers.delete(e);
      else this.handlers.set(e, (this.handlers.get(e) || []).filter((f) => f !== handler));
    }
  }
  save_changes() {}
  send() { this.notice.hidden = false; }  // a request only the kernel could answer
}
async function drawAll() {
  for (const holder of document.querySelectorAll("[data-cw-widget]")) {
    const spec = JSON.parse(holder.querySelector("script[type='application/json']").textContent, reviver);
    const notice = holder.querySelector(".cw-static-notice");
    const url = URL.createObjectURL(new Blob([spec.esm], { type: "text/javascript" }));
    try {
      const module = await import(url);
      const widget = module.default ?? module;
      const model = new PageModel(spec.state, notice);
      const definition = typeof widget === "function" ? await widget() : widget;
      await definition.initialize?.({ model });
      const el = holder.querySelector(".cw-static-view");
      await definition.render({ model, el });
      holder.dataset.cwRendered = "true";
    } catch (error) {
      holder.dataset.cwRendered = "false";
      holder.querySelector(".cw-static-view").textContent = `could not draw this widget: ${error}`;
    } finally {
      URL.revokeObjectURL(url);
    }
  }
}

drawAll();
