/** Every workflow the worker registers. `reimport` is the type operators start; `cutover` ends the project. */
export { reimport } from './reimport';
export { importPhase } from './phase';
export { backupPhase, deletePhase, validationPhase } from './steps';
export { rollback } from './rollback';
export { cutover } from './cutover';
