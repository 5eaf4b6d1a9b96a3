// poll runs fn now and then every ms until the view is left, one call at a
// time, so that a slow gateway never piles requests up.
export function poll(fn, ms, signal) {
  const tick = async () => {
    if (signal.aborted) return;
    try {
      await fn();
    } finally {
      if (!signal.aborted) setTimeout(tick, ms);
    }
  };
  tick();
}
