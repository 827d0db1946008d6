//! What to send: every command line encoded once, up front, into one buffer, so that sending a
//! request is a copy of a slice; the `--mix` of kinds; and the pick of the next request.

use std::path::Path;

use mtqp_protocol::command::is_envid;
use mtqp_protocol::secret::{encode, hash_secret};

use crate::check::Kind;
use crate::rng::Rng;

/// `--mix`: a weight for each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix(pub [u32; 4]);

impl Mix {
    pub fn total(&self) -> u64 {
        self.0.iter().map(|&w| u64::from(w)).sum()
    }

    pub fn weight(&self, kind: Kind) -> u32 {
        self.0[kind.index()]
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = Kind::ALL
            .iter()
            .filter(|k| self.weight(**k) > 0)
            .map(|k| format!("{}={}", k.name(), self.weight(*k)))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// Parses `hit=90,miss=5,badsecret=5,comment=0` (kinds left out weigh 0).
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut w = [0u32; 4];
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, n) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}': expected KIND=WEIGHT"))?;
        let kind = Kind::ALL
            .iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| format!("'{name}': not a kind (hit, miss, badsecret, comment)"))?;
        w[kind.index()] = n
            .trim()
            .parse()
            .map_err(|_| format!("'{n}': not a whole-number weight"))?;
    }
    let mix = Mix(w);
    if mix.total() == 0 {
        return Err("the mix has no weight at all".into());
    }
    Ok(mix)
}

/// One encoded command: its line in [`Workload::bytes`] and, within, the envid it asks for.
#[derive(Debug, Clone, Copy)]
pub struct Cmd {
    pub start: usize,
    pub len: u32,
    /// Offset of the envid from `start`, and its length (0 for COMMENT).
    pub envid_at: u16,
    pub envid_len: u16,
}

/// Every command a run may send.
pub struct Workload {
    pub bytes: Vec<u8>,
    pub cmds: Vec<Cmd>,
    /// The commands of each kind: a range of `cmds`.
    ranges: [(usize, usize); 4],
    mix: Mix,
}

/// How many distinct miss and wrong-secret commands to encode.
const NEGATIVES: usize = 10_000;

impl Workload {
    /// Builds the commands from the (envid, base64 secret) pairs.
    pub fn new(secrets: &[(String, String)], mix: Mix) -> Result<Workload, String> {
        let needs_secrets = mix.weight(Kind::Hit) > 0 || mix.weight(Kind::BadSecret) > 0;
        if secrets.is_empty() && needs_secrets {
            return Err(
                "the secrets file holds no secret, and the mix asks for hits or bad secrets".into(),
            );
        }
        let mut w = Workload {
            bytes: Vec::with_capacity(secrets.len() * 72 + NEGATIVES * 2 * 72),
            cmds: Vec::new(),
            ranges: [(0, 0); 4],
            mix,
        };
        let negatives = secrets.len().clamp(1, NEGATIVES);
        for kind in Kind::ALL {
            let from = w.cmds.len();
            if mix.weight(kind) > 0 {
                match kind {
                    Kind::Hit => {
                        for (envid, secret) in secrets {
                            w.push_track(envid, secret);
                        }
                    }
                    Kind::Miss => {
                        for i in 0..negatives {
                            let secret = encode(format!("miss-{i}").as_bytes());
                            w.push_track(&format!("nope-{i}@client.example"), &secret);
                        }
                    }
                    Kind::BadSecret => {
                        for i in 0..negatives {
                            // Spread over the file; a secret no log line was written with.
                            let (envid, _) = &secrets[i * secrets.len() / negatives];
                            let secret = encode(format!("mtqp-load wrong secret {i}").as_bytes());
                            w.push_track(envid, &secret);
                        }
                    }
                    Kind::Comment => {
                        let start = w.bytes.len();
                        w.bytes.extend_from_slice(b"COMMENT mtqp-load\r\n");
                        w.cmds.push(Cmd {
                            start,
                            len: (w.bytes.len() - start) as u32,
                            envid_at: 0,
                            envid_len: 0,
                        });
                    }
                }
            }
            w.ranges[kind.index()] = (from, w.cmds.len());
        }
        Ok(w)
    }

    fn push_track(&mut self, envid: &str, secret: &str) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b"TRACK <");
        self.bytes.extend_from_slice(envid.as_bytes());
        self.bytes.extend_from_slice(b"> ");
        self.bytes.extend_from_slice(secret.as_bytes());
        self.bytes.extend_from_slice(b"\r\n");
        self.cmds.push(Cmd {
            start,
            len: (self.bytes.len() - start) as u32,
            envid_at: 7,
            envid_len: envid.len() as u16,
        });
    }

    /// The next request: its kind and command index.
    pub fn pick(&self, rng: &mut Rng) -> (Kind, u32) {
        let mut r = rng.below(self.mix.total());
        let mut kind = Kind::Hit;
        for k in Kind::ALL {
            let w = u64::from(self.mix.weight(k));
            if r < w {
                kind = k;
                break;
            }
            r -= w;
        }
        let (from, to) = self.ranges[kind.index()];
        let i = from + rng.below((to - from) as u64) as usize;
        (kind, i as u32)
    }

    /// The command line of command `i`, CRLF included.
    pub fn line(&self, i: u32) -> &[u8] {
        let c = &self.cmds[i as usize];
        &self.bytes[c.start..c.start + c.len as usize]
    }

    /// The envid command `i` asks for, as sent.
    pub fn envid(&self, i: u32) -> &[u8] {
        let c = &self.cmds[i as usize];
        let at = c.start + usize::from(c.envid_at);
        &self.bytes[at..at + usize::from(c.envid_len)]
    }
}

/// Reads a secrets file of `envid<TAB>base64 secret` lines, as `gen` writes it.
pub fn read_secrets(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("{}:{}: {why}", path.display(), n + 1);
        let (envid, secret) = line
            .split_once('\t')
            .ok_or_else(|| bad("expected envid, TAB, base64 secret"))?;
        if !is_envid(envid.as_bytes()) {
            return Err(bad("the envid is not xtext of 1 to 100 octets"));
        }
        if hash_secret(secret.as_bytes()).is_none() {
            return Err(bad("the secret is not base64"));
        }
        out.push((envid.to_string(), secret.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| {
                (
                    format!("e{i}@x.example"),
                    encode(format!("s{i}").as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn mix_parsing() {
        assert_eq!(
            parse_mix("hit=90,miss=5,badsecret=5").unwrap(),
            Mix([90, 5, 5, 0])
        );
        assert_eq!(parse_mix("comment=1").unwrap(), Mix([0, 0, 0, 1]));
        assert_eq!(
            parse_mix("hit=90,miss=5,badsecret=5").unwrap().to_string(),
            "hit=90,miss=5,badsecret=5"
        );
        assert!(parse_mix("hit=0").is_err());
        assert!(parse_mix("hits=1").is_err());
        assert!(parse_mix("hit").is_err());
        assert!(parse_mix("hit=-1").is_err());
    }

    #[test]
    fn commands_are_encoded_once_and_picked_by_weight() {
        let w = Workload::new(&secrets(100), Mix([70, 10, 10, 10])).unwrap();
        assert_eq!(w.cmds.len(), 100 + 100 + 100 + 1);
        let mut rng = Rng::new(7);
        let mut seen = [0u32; 4];
        for _ in 0..100_000 {
            let (kind, i) = w.pick(&mut rng);
            seen[kind.index()] += 1;
            let line = w.line(i);
            assert!(line.ends_with(b"\r\n"));
            match kind {
                Kind::Hit => {
                    let envid = std::str::from_utf8(w.envid(i)).unwrap();
                    let n: usize = envid[1..envid.find('@').unwrap()].parse().unwrap();
                    let want = format!(
                        "TRACK <e{n}@x.example> {}\r\n",
                        encode(format!("s{n}").as_bytes())
                    );
                    assert_eq!(line, want.as_bytes());
                }
                Kind::Miss => assert!(w.envid(i).starts_with(b"nope-")),
                Kind::BadSecret => {
                    let envid = std::str::from_utf8(w.envid(i)).unwrap();
                    let n: usize = envid[1..envid.find('@').unwrap()].parse().unwrap();
                    let right = encode(format!("s{n}").as_bytes());
                    assert!(!line.ends_with(format!(" {right}\r\n").as_bytes()));
                }
                Kind::Comment => assert_eq!(line, b"COMMENT mtqp-load\r\n"),
            }
        }
        for (k, want) in [70_000.0, 10_000.0, 10_000.0, 10_000.0].iter().enumerate() {
            assert!((f64::from(seen[k]) - want).abs() < want * 0.05, "{seen:?}");
        }
    }

    #[test]
    fn hits_need_secrets() {
        assert!(Workload::new(&[], Mix([1, 0, 0, 0])).is_err());
        assert!(Workload::new(&[], Mix([0, 1, 0, 1])).is_ok());
    }

    #[test]
    fn secrets_file() {
        let dir = std::env::temp_dir().join(format!("mtqp-load-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s");
        std::fs::write(&p, "a@b.example\tYWJj\n\nc@d.example\tZGVm\n").unwrap();
        assert_eq!(read_secrets(&p).unwrap().len(), 2);
        std::fs::write(&p, "a@b.example YWJj\n").unwrap();
        assert!(read_secrets(&p).unwrap_err().contains(":1:"));
        std::fs::write(&p, "a@b.example\tY!Jj\n").unwrap();
        assert!(read_secrets(&p).unwrap_err().contains("base64"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
