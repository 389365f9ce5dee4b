/**
 * How many FileMaker requests an activity may send at once: at most `max`, and never more than the run's concurrency
 * (`inFlight`, the operator's throttle on the host: at 1, one request at a time).
 */
export function fileMakerLanes(max: number, inFlight: number | undefined): number {
  return Math.max(1, Math.min(max, inFlight ?? max));
}

/**
 * Runs `fn` over `items` with at most `n` in flight. After the first error no further item is started; the ones in
 * flight finish (so what they did is recorded), then that error is thrown.
 */
export async function inParallel<T>(items: readonly T[], n: number, fn: (item: T, index: number) => Promise<void>) {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const lane = async () => {
    while (next < items.length && failure === undefined) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, lane));
  if (failure !== undefined) throw failure.error;
}
