/**
 * What src/secrets needs of a logger: pino's call shape (`log.warn({fields}, 'message')`),
 * so the proxy's logger fits without src/secrets importing the proxy. Nothing passed here
 * may hold a secret value or a credential.
 */
export interface SecretsLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}
