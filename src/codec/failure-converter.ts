/**
 * Loaded by path (`DataConverter.failureConverterPath`) in the worker, its workflow bundle and the client.
 * It runs inside the workflow sandbox, so it must stay free of Node built-ins and I/O.
 */
import { DefaultFailureConverter } from '@temporalio/common';

// Messages and stack traces go into an encoded payload, which the payload codec then encrypts.
export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
