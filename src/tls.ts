// The certificate and key of MQTT over TLS (docs/operations.md §3): read from their
// PEM files and checked by building a secure context from them, at start
// (a bad file stops the server, naming it) and at every reload (SIGHUP).
import { readFileSync } from 'node:fs'
import { createSecureContext } from 'node:tls'

export interface TlsFiles { certFile: string, keyFile: string }
export interface TlsMaterial { cert: Buffer, key: Buffer }

/** Reads both files and checks that they make a usable pair; the error names the file at fault, never its contents. */
export function loadTlsFiles ({ certFile, keyFile }: TlsFiles): TlsMaterial {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new Error(`${what} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  const cert = read(certFile, 'TLS_CERT_FILE')
  const key = read(keyFile, 'TLS_KEY_FILE')
  if (!cert.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`TLS_CERT_FILE ${certFile} holds no PEM certificate`)
  if (!/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(key.toString('latin1'))) throw new Error(`TLS_KEY_FILE ${keyFile} holds no PEM private key`)
  try {
    createSecureContext({ key })
  } catch {
    throw new Error(`TLS_KEY_FILE ${keyFile} is not a usable private key`)
  }
  try {
    createSecureContext({ cert })
  } catch {
    throw new Error(`TLS_CERT_FILE ${certFile} is not a usable certificate`)
  }
  try {
    createSecureContext({ cert, key })
  } catch {
    throw new Error(`TLS_KEY_FILE ${keyFile} does not match the certificate in TLS_CERT_FILE ${certFile}`)
  }
  return { cert, key }
}
