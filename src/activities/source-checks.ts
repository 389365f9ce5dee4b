/**
 * Checks of the FileMaker source that the run's pre-flight activity and the operator's `doctor` command share, so the
 * two can never disagree on what a layout must hold.
 */
import type { SourceTable } from '../domain/tables';
import type { FileMakerClient } from '../filemaker';

/** The fields the table's mappers read that its Data API layout lacks (names compared exactly, as FileMaker does). */
export async function missingFields(fm: Pick<FileMakerClient, 'layoutFields'>, table: SourceTable): Promise<string[]> {
  const fields = new Set(await fm.layoutFields(table.layout));
  return table.requiredFields.filter((f) => !fields.has(f));
}
