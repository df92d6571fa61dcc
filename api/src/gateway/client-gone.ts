// Whether the client of an invocation went away, with listeners to stop work
// for it. An AbortController and its EventTarget listeners cost more per
// request than the rest of this file's users do on the warm path.
export class ClientGone {
  aborted = false;
  private listeners: Set<() => void> | undefined;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const listeners = this.listeners;
    this.listeners = undefined;
    for (const listener of listeners ?? []) listener();
  }

  /** Calls `listener` once when the client goes; the function returned forgets it. */
  onAbort(listener: () => void): () => void {
    if (this.aborted) {
      listener();
      return () => undefined;
    }
    (this.listeners ??= new Set()).add(listener);
    return () => { this.listeners?.delete(listener); };
  }
}

/** For invocations no client waits on (asynchronous ones): keeps no listener. */
export const NEVER_GONE: ClientGone = new (class extends ClientGone {
  override abort(): void {}
  override onAbort(): () => void {
    return () => undefined;
  }
})();
