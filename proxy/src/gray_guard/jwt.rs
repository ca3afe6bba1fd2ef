//! The JWT check of protected gray headers: a bearer token signed (RS256 or ES256) by a
//! key of a JWKS file, unexpired, with the configured issuer and a claim holding one of
//! the configured values.

use http::HeaderMap;
use http::header::AUTHORIZATION;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sluice_api::release_policy::JwtCheck;

/// One verification key of the set.
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    key: DecodingKey,
}

/// Verifies bearer tokens against the keys of a JWKS file.
pub struct JwtVerifier {
    keys: Vec<Key>,
    issuer: Option<String>,
    claim: String,
    values: Vec<String>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("keys", &self.keys.len())
            .field("issuer", &self.issuer)
            .field("claim", &self.claim)
            .finish()
    }
}

impl JwtVerifier {
    /// Loads the JWKS file of `check`; an unreadable file or a set without RS256/ES256 keys
    /// is logged and verifies nothing (fails closed).
    pub fn load(check: &JwtCheck, policy: &str) -> JwtVerifier {
        let file = &check.jwks_file;
        let keys = match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<JwkSet>(&b).map_err(|e| e.to_string()))
        {
            Ok(set) => set
                .keys
                .iter()
                .filter_map(|jwk| {
                    let alg = match (&jwk.common.key_algorithm, &jwk.algorithm) {
                        (Some(KeyAlgorithm::RS256), AlgorithmParameters::RSA(_)) => {
                            Algorithm::RS256
                        }
                        (Some(KeyAlgorithm::ES256), AlgorithmParameters::EllipticCurve(_)) => {
                            Algorithm::ES256
                        }
                        (None, AlgorithmParameters::RSA(_)) => Algorithm::RS256,
                        (None, AlgorithmParameters::EllipticCurve(ec))
                            if ec.curve == EllipticCurve::P256 =>
                        {
                            Algorithm::ES256
                        }
                        _ => return None,
                    };
                    Some(Key {
                        kid: jwk.common.key_id.clone(),
                        alg,
                        key: DecodingKey::from_jwk(jwk).ok()?,
                    })
                })
                .collect(),
            Err(error) => {
                tracing::warn!(policy, file, %error, "protectedHeaders JWKS unreadable; no JWT passes");
                Vec::new()
            }
        };
        if keys.is_empty() {
            tracing::warn!(policy, file, "protectedHeaders JWKS has no RS256/ES256 key");
        }
        JwtVerifier {
            keys,
            issuer: check.issuer.clone(),
            claim: check.claim.clone(),
            values: check.values.clone(),
        }
    }

    /// True when the request's `authorization: Bearer` token verifies and its claim holds
    /// an accepted value.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .any(|token| self.verifies(token.trim()))
    }

    fn verifies(&self, token: &str) -> bool {
        let Ok(head) = jsonwebtoken::decode_header(token) else {
            return false;
        };
        self.keys
            .iter()
            .filter(|k| k.alg == head.alg && (head.kid.is_none() || k.kid == head.kid))
            .any(|k| {
                let mut v = Validation::new(k.alg);
                v.validate_aud = false;
                if let Some(iss) = &self.issuer {
                    v.set_issuer(&[iss]);
                }
                jsonwebtoken::decode::<Value>(token, &k.key, &v)
                    .is_ok_and(|data| self.claim_ok(&data.claims))
            })
    }

    fn claim_ok(&self, claims: &Value) -> bool {
        let accepted = |v: &Value| match v {
            Value::String(s) => self.values.contains(s),
            Value::Bool(b) => self.values.iter().any(|x| x == &b.to_string()),
            _ => false,
        };
        match claims.get(&self.claim) {
            Some(Value::Array(items)) => items.iter().any(accepted),
            Some(v) => accepted(v),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use http::HeaderValue;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use rcgen::KeyPair;
    use serde_json::json;

    use super::*;

    /// An ES256 key: its signing key and its JWKS (kid `k1`).
    fn key() -> (EncodingKey, String) {
        let pair = KeyPair::generate().unwrap();
        let raw = pair.public_key_raw();
        let jwks = json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
        }]});
        (
            EncodingKey::from_ec_der(&pair.serialize_der()),
            jwks.to_string(),
        )
    }

    fn token(key: &EncodingKey, claims: Value) -> HeaderMap {
        let mut head = Header::new(Algorithm::ES256);
        head.kid = Some("k1".into());
        let jwt = encode(&head, &claims, key).unwrap();
        let mut h = HeaderMap::new();
        h.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {jwt}")).unwrap(),
        );
        h
    }

    #[test]
    fn a_signed_unexpired_token_with_the_claim_passes_and_nothing_else_does() {
        let dir = std::env::temp_dir().join(format!("sluice-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (signer, jwks) = key();
        let file = dir.join("jwks.json");
        std::fs::write(&file, jwks).unwrap();
        let check = JwtCheck {
            jwks_file: file.display().to_string(),
            issuer: Some("https://issuer.example".into()),
            claim: "groups".into(),
            values: vec!["gray-testers".into()],
        };
        let v = JwtVerifier::load(&check, "t/p");
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let good =
            json!({"iss": "https://issuer.example", "exp": exp, "groups": ["a", "gray-testers"]});
        assert!(v.allows(&token(&signer, good.clone())));
        let other = json!({"iss": "https://issuer.example", "exp": exp, "groups": ["a"]});
        assert!(!v.allows(&token(&signer, other)), "claim value");
        let issuer = json!({"iss": "https://other.example", "exp": exp, "groups": "gray-testers"});
        assert!(!v.allows(&token(&signer, issuer)), "issuer");
        let expired =
            json!({"iss": "https://issuer.example", "exp": exp - 7200, "groups": "gray-testers"});
        assert!(!v.allows(&token(&signer, expired)), "expired");
        let (stranger, _) = key();
        assert!(
            !v.allows(&token(&stranger, good)),
            "another key's signature"
        );
        assert!(!v.allows(&HeaderMap::new()), "no token");

        let missing = JwtCheck {
            jwks_file: dir.join("absent.json").display().to_string(),
            ..check
        };
        let closed = JwtVerifier::load(&missing, "t/p");
        let good = json!({"iss": "https://issuer.example", "exp": exp, "groups": "gray-testers"});
        assert!(!closed.allows(&token(&signer, good)), "fails closed");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
