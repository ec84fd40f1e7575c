//! One pooled SMTP transport per email target, built on first use and kept
//! while the target's SMTP settings stay the same.
//!
//! Each attempt reads the target's current config, so the cache is keyed by
//! target name and remembers the [`SmtpConfig`] (and pool size) the transport
//! was built from: after a reload that changes them, the next attempt builds a
//! new transport and the old pool closes its connections once the attempts
//! still using it are done.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpTls};

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// How long an unused pooled connection stays open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A transport and what it was built from.
struct Cached {
    smtp: SmtpConfig,
    pool_size: u32,
    /// Tells this transport from a later one for the same target.
    generation: u64,
    transport: Transport,
}

/// A transport handed to one attempt.
#[derive(Clone)]
pub struct Leased {
    pub transport: Transport,
    pub generation: u64,
}

/// The transports of every email target, by target name.
#[derive(Default)]
pub struct Transports {
    by_target: Mutex<HashMap<String, Cached>>,
    next_generation: std::sync::atomic::AtomicU64,
}

impl Transports {
    /// The transport for `target` with these settings: the cached one when
    /// they did not change, else a new one (which replaces it).
    pub async fn get(
        &self,
        target: &str,
        smtp: &SmtpConfig,
        pool_size: u32,
    ) -> Result<Leased, String> {
        if let Some(leased) = self.cached(target, smtp, pool_size) {
            return Ok(leased);
        }
        // Built outside the lock: loading the system's roots reads files.
        let transport = build(smtp, pool_size).await?;
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut map = self.lock();
        // Another attempt may have built one meanwhile: keep the first, so
        // every attempt shares one pool.
        if let Some(c) = map.get(target)
            && c.smtp == *smtp
            && c.pool_size == pool_size
        {
            return Ok(Leased {
                transport: c.transport.clone(),
                generation: c.generation,
            });
        }
        map.insert(
            target.to_owned(),
            Cached {
                smtp: smtp.clone(),
                pool_size,
                generation,
                transport: transport.clone(),
            },
        );
        Ok(Leased {
            transport,
            generation,
        })
    }

    /// Drop `target`'s transport if it is still `generation`: after an
    /// attempt was cut off by the timeout, its connection may be mid-command,
    /// and must not be handed to the next attempt.
    pub fn discard(&self, target: &str, generation: u64) {
        let mut map = self.lock();
        if map.get(target).is_some_and(|c| c.generation == generation) {
            map.remove(target);
        }
    }

    fn cached(&self, target: &str, smtp: &SmtpConfig, pool_size: u32) -> Option<Leased> {
        let map = self.lock();
        let c = map.get(target)?;
        (c.smtp == *smtp && c.pool_size == pool_size).then(|| Leased {
            transport: c.transport.clone(),
            generation: c.generation,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.by_target
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A transport for `smtp`: TLS as configured (STARTTLS required, never
/// opportunistic), credentials when given, connections pooled.
async fn build(smtp: &SmtpConfig, pool_size: u32) -> Result<Transport, String> {
    let tls = match smtp.tls {
        SmtpTls::None => Tls::None,
        SmtpTls::Starttls => Tls::Required(tls_parameters(smtp).await?),
        SmtpTls::Tls => Tls::Wrapper(tls_parameters(smtp).await?),
    };
    // `builder_dangerous` only means "no TLS chosen yet": it is set just below.
    let mut builder = Transport::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(smtp.timeout))
        .pool_config(
            PoolConfig::new()
                .max_size(pool_size)
                .idle_timeout(IDLE_TIMEOUT),
        );
    if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
        builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
    }
    Ok(builder.build())
}

/// The TLS settings: the relay's name checked against its certificate, the
/// system's roots plus those of `ca_file`. Built on a blocking thread, since
/// the system's roots are read from disk.
async fn tls_parameters(smtp: &SmtpConfig) -> Result<TlsParameters, String> {
    let host = smtp.host.clone();
    let extra: Arc<[Vec<u8>]> = smtp.ca_certs.clone().into();
    tokio::task::spawn_blocking(move || {
        let mut params = TlsParameters::builder(host);
        for der in extra.iter() {
            let cert = Certificate::from_der(der.clone())
                .map_err(|e| format!("cannot use a certificate of ca_file: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        params
            .build_rustls()
            .map_err(|e| format!("cannot set up TLS: {e}"))
    })
    .await
    .map_err(|e| format!("cannot set up TLS: {e}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SmtpConfig;

    fn smtp(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: SmtpTls::None,
            username: None,
            password: None,
            timeout: Duration::from_secs(1),
            ca_file: None,
            ca_certs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn one_transport_per_target_until_its_settings_change() {
        let transports = Transports::default();
        let first = transports.get("mail", &smtp(2525), 4).await.unwrap();
        let again = transports.get("mail", &smtp(2525), 4).await.unwrap();
        assert_eq!(first.generation, again.generation, "reused");

        let other = transports.get("other", &smtp(2525), 4).await.unwrap();
        assert_ne!(other.generation, first.generation, "one per target");

        let moved = transports.get("mail", &smtp(2526), 4).await.unwrap();
        assert_ne!(
            moved.generation, first.generation,
            "new port: new transport"
        );
        let resized = transports.get("mail", &smtp(2526), 8).await.unwrap();
        assert_ne!(resized.generation, moved.generation, "new pool size");
        let mut with_password = smtp(2526);
        with_password.username = Some("u".into());
        with_password.password = Some(crate::config::Secret::new("p"));
        let rekeyed = transports.get("mail", &with_password, 8).await.unwrap();
        assert_ne!(rekeyed.generation, resized.generation, "new credentials");
        assert_eq!(
            transports
                .get("mail", &with_password, 8)
                .await
                .unwrap()
                .generation,
            rekeyed.generation
        );
    }

    #[tokio::test]
    async fn a_discarded_transport_is_rebuilt_but_a_newer_one_is_kept() {
        let transports = Transports::default();
        let first = transports.get("mail", &smtp(2525), 4).await.unwrap();
        transports.discard("mail", first.generation);
        let second = transports.get("mail", &smtp(2525), 4).await.unwrap();
        assert_ne!(second.generation, first.generation);
        // A late discard of the old generation leaves the new one alone.
        transports.discard("mail", first.generation);
        let third = transports.get("mail", &smtp(2525), 4).await.unwrap();
        assert_eq!(third.generation, second.generation);
    }
}
