//! The SPICE ticket: a password encrypted with RSA-OAEP (SHA-1) under a key
//! the server generates for each link.

use rsa::pkcs8::EncodePublicKey;
use rsa::rand_core::TryCryptoRng;

use crate::consts::{MAX_PASSWORD_LENGTH, TICKET_BYTES, TICKET_KEY_BITS, TICKET_PUBKEY_BYTES};

/// Errors of the ticket key.
#[derive(Debug, thiserror::Error)]
pub enum TicketError {
    /// RSA key generation failed.
    #[error("ticket key generation failed: {0}")]
    KeyGeneration(rsa::Error),
    /// The DER public key has an unexpected size.
    #[error("ticket public key is {0} bytes instead of {TICKET_PUBKEY_BYTES}")]
    PublicKeySize(usize),
    /// The public key could not be encoded.
    #[error("ticket public key encoding failed")]
    PublicKeyEncoding,
    /// The client's ticket does not decrypt under our key.
    #[error("ticket does not decrypt")]
    Decrypt,
}

/// How many bytes a right-padded ticket may be shifted: a ciphertext two
/// bytes short happens once in 65,536 tickets, three bytes short once in
/// 16 million; each try costs one private-key operation.
const MAX_TICKET_SHIFT: usize = 2;

/// An RSA-1024 key pair used for one link's ticket.
pub struct TicketKey {
    key: rsa::PrivateKey,
    public_der: [u8; TICKET_PUBKEY_BYTES],
}

impl std::fmt::Debug for TicketKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketKey").finish_non_exhaustive()
    }
}

impl TicketKey {
    /// Generates a fresh key pair with the randomness of `rng`.
    pub fn generate<R: TryCryptoRng + ?Sized>(rng: &mut R) -> Result<Self, TicketError> {
        let key = rsa::PrivateKey::new(rng, TICKET_KEY_BITS).map_err(TicketError::KeyGeneration)?;
        let der = key
            .to_public_key()
            .to_public_key_der()
            .map_err(|_| TicketError::PublicKeyEncoding)?;
        let public_der: [u8; TICKET_PUBKEY_BYTES] = der
            .as_bytes()
            .try_into()
            .map_err(|_| TicketError::PublicKeySize(der.as_bytes().len()))?;
        Ok(Self { key, public_der })
    }

    /// DER SubjectPublicKeyInfo sent in the link reply.
    pub fn public_der(&self) -> &[u8; TICKET_PUBKEY_BYTES] {
        &self.public_der
    }

    /// Decrypts a ticket into the password bytes, up to the first NUL.
    ///
    /// `rng` blinds the private-key operation against timing side channels.
    ///
    /// spice-html5 writes the ciphertext's shortest big-endian form at the
    /// start of the field and pads the end with zeros, so about one ticket in
    /// 256 (ciphertext below 2^1016) arrives shifted by a byte. A ticket that
    /// does not decrypt as sent and ends in zeros is tried again shifted
    /// right by one, then two bytes; OAEP's padding check rejects a wrong
    /// shift.
    pub fn decrypt<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        ticket: &[u8; TICKET_BYTES],
    ) -> Result<Password, TicketError> {
        if let Some(password) = self.decrypt_exact(rng, ticket) {
            return Ok(password);
        }
        let trailing_zeros = ticket.iter().rev().take_while(|&&b| b == 0).count();
        for shift in 1..=trailing_zeros.min(MAX_TICKET_SHIFT) {
            let mut shifted = [0u8; TICKET_BYTES];
            shifted[shift..].copy_from_slice(&ticket[..TICKET_BYTES - shift]);
            if let Some(password) = self.decrypt_exact(rng, &shifted) {
                return Ok(password);
            }
        }
        Err(TicketError::Decrypt)
    }

    fn decrypt_exact<R: TryCryptoRng + ?Sized>(
        &self,
        rng: &mut R,
        ticket: &[u8; TICKET_BYTES],
    ) -> Option<Password> {
        let mut plain = self
            .key
            .oaep_decrypt_with_rng::<sha1::Sha1, _>(rng, ticket)
            .ok()?;
        if let Some(nul) = plain.iter().position(|&b| b == 0) {
            plain.truncate(nul);
        }
        Some(Password(plain))
    }

    /// Encrypts a password as a client does (tests and tools).
    pub fn encrypt_for_client<R: TryCryptoRng + ?Sized>(
        public_der: &[u8],
        rng: &mut R,
        password: &str,
    ) -> Option<Vec<u8>> {
        use rsa::pkcs8::DecodePublicKey;
        let key = rsa::PublicKey::from_public_key_der(public_der).ok()?;
        let mut plain = password.as_bytes().to_vec();
        plain.push(0);
        key.oaep_encrypt_with_rng::<sha1::Sha1, _>(rng, &plain).ok()
    }
}

/// A decrypted password; wiped from memory when dropped.
pub struct Password(Vec<u8>);

impl Password {
    /// Compares with `expected` in time that does not depend on where they differ.
    pub fn matches(&self, expected: &str) -> bool {
        let expected = expected.as_bytes();
        if expected.len() != self.0.len() || expected.len() > MAX_PASSWORD_LENGTH {
            return false;
        }
        self.0.iter().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

impl Drop for Password {
    fn drop(&mut self) {
        for b in &mut self.0 {
            // A volatile-free wipe is enough here: the buffer is freed right after.
            *b = 0;
        }
        std::hint::black_box(&self.0);
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_round_trip_and_mismatch() {
        let mut rng = getrandom::SysRng;
        let key = TicketKey::generate(&mut rng).unwrap();
        assert_eq!(key.public_der()[0], 0x30, "DER sequence");
        let ct = TicketKey::encrypt_for_client(key.public_der(), &mut rng, "s3cret").unwrap();
        let ticket: [u8; TICKET_BYTES] = ct.try_into().unwrap();
        let pw = key.decrypt(&mut rng, &ticket).unwrap();
        assert!(pw.matches("s3cret"));
        assert!(!pw.matches("s3cre"));
        assert!(!pw.matches("s3cret!"));
        assert!(!pw.matches(""));
    }

    /// spice-html5's form: the ciphertext without its leading zero bytes,
    /// then zeros up to the field's size.
    fn right_padded(ciphertext: &[u8]) -> [u8; TICKET_BYTES] {
        let significant: Vec<u8> = ciphertext.iter().copied().skip_while(|&b| b == 0).collect();
        let mut ticket = [0u8; TICKET_BYTES];
        ticket[..significant.len()].copy_from_slice(&significant);
        ticket
    }

    #[test]
    fn a_short_ciphertext_padded_at_the_end_decrypts() {
        let mut rng = getrandom::SysRng;
        let key = TicketKey::generate(&mut rng).unwrap();
        let short = (0..20_000)
            .map(|_| TicketKey::encrypt_for_client(key.public_der(), &mut rng, "pw").unwrap())
            .find(|ct| ct[0] == 0)
            .expect("one ciphertext in 256 starts with a zero byte");
        let ticket = right_padded(&short);
        assert_ne!(ticket[..], short[..], "the client's form differs");
        assert!(key.decrypt(&mut rng, &ticket).unwrap().matches("pw"));
        let left_padded: [u8; TICKET_BYTES] = short.try_into().unwrap();
        assert!(key.decrypt(&mut rng, &left_padded).unwrap().matches("pw"));
    }

    #[test]
    fn a_shift_never_turns_a_wrong_ticket_into_a_password() {
        let mut rng = getrandom::SysRng;
        let key = TicketKey::generate(&mut rng).unwrap();
        let mut ticket = [0x5Au8; TICKET_BYTES];
        ticket[TICKET_BYTES - 3..].fill(0);
        assert!(matches!(
            key.decrypt(&mut rng, &ticket),
            Err(TicketError::Decrypt)
        ));
    }

    #[test]
    fn garbage_ticket_is_an_error() {
        let mut rng = getrandom::SysRng;
        let key = TicketKey::generate(&mut rng).unwrap();
        assert!(matches!(
            key.decrypt(&mut rng, &[0xAB; TICKET_BYTES]),
            Err(TicketError::Decrypt)
        ));
    }
}
