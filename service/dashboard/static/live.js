// Refreshing a page while what it shows can still change, without reloading it.

const MIN_INTERVAL_MS = 2000;
const MAX_INTERVAL_MS = 30000;

/**
 * Calls `refresh` now and then again while it resolves to true: every 2 s, or four times
 * as long as the last refresh took (a sweep of 10,000 trials polls less often than a
 * small one), backing off on errors. Pauses while the tab is hidden. The header shows
 * when it last refreshed.
 */
export class Live {
  constructor(refresh, { onError } = {}) {
    this.refresh = refresh;
    this.onError = onError;
    this.timer = null;
    this.stopped = false;
    this.failures = 0;
    this.indicator = document.getElementById("live");
    this.onVisible = () => {
      if (!document.hidden && this.pending) {
        this.pending = false;
        this.tick();
      }
    };
    document.addEventListener("visibilitychange", this.onVisible);
  }

  start() {
    this.tick();
    return this;
  }

  async tick() {
    if (this.stopped) return;
    if (document.hidden) {
      this.pending = true;
      return;
    }
    const started = performance.now();
    let again;
    try {
      again = await this.refresh();
      this.failures = 0;
      this.show(again ? `live · updated ${new Date().toLocaleTimeString()}` : null);
    } catch (err) {
      if (this.stopped) return;
      this.failures += 1;
      again = err.status !== 404 && err.status !== 401;
      this.show(`update failed: ${err.message}`, true);
      this.onError?.(err);
    }
    if (this.stopped || !again) return;
    const took = performance.now() - started;
    const wait = Math.min(MAX_INTERVAL_MS, Math.max(MIN_INTERVAL_MS, 4 * took) * 2 ** Math.min(this.failures, 4));
    this.timer = setTimeout(() => this.tick(), wait);
  }

  show(text, failed = false) {
    this.indicator.hidden = !text;
    this.indicator.textContent = text || "";
    this.indicator.classList.toggle("failed", failed);
  }

  dispose() {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.show(null);
  }
}
