// Edits that go back to Python. Sliders fire many `input` events per drag; each trait gets its
// own debounced save, so dragging one slider never swallows another slider's pending value.
import { debounce } from "./render.js";

/**
 * A `save(name, value)` that sets `name` on the model and saves, at most once per `ms` pause
 * per trait. `save.flush()` sends every pending value now; `save.cancel()` drops them.
 */
export function debouncedSaver(model, ms) {
  const perTrait = new Map();
  const save = (name, value) => {
    let send = perTrait.get(name);
    if (!send) {
      send = debounce((latest) => {
        model.set(name, latest);
        model.save_changes();
      }, ms);
      perTrait.set(name, send);
    }
    send(value);
  };
  save.flush = () => {
    for (const send of perTrait.values()) send.flush();
  };
  save.cancel = () => {
    for (const send of perTrait.values()) send.cancel();
  };
  return save;
}
