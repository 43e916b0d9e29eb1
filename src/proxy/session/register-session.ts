import type { MeshContext } from '../mesh-context.js';
import type { SecureSession } from './secure-session.js';

/**
 * Puts a session in the table (so revocation can find it) and reports its end, in one
 * metric update and one log line, the same for both directions.
 */
export function registerSession(ctx: Pick<MeshContext, 'sessions' | 'metrics' | 'log'>, session: SecureSession): SecureSession {
  ctx.sessions.add(session);
  session.onEnd((end) => {
    ctx.metrics.sessionEnded(session.direction, end);
    ctx.log.info(
      {
        event: 'session-end',
        direction: session.direction,
        peer: session.peer.agentId,
        targetPort: session.targetPort,
        result: end.result,
        reason: end.reason,
        bytesIn: end.bytesToApp,
        bytesOut: end.bytesFromApp,
        durationMs: end.durationMs,
      },
      'session ended',
    );
  });
  return session;
}
