/**
 * How many FileMaker requests an activity may send at once: at most `max`, and never more than the run's concurrency
 * (`inFlight`, the operator's throttle on the host: at 1, one request at a time).
 */
export function fileMakerLanes(max: number, inFlight: number | undefined): number {
  return Math.max(1, Math.min(max, inFlight ?? max));
}
