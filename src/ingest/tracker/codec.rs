//! A message's whole binary encoding: what a snapshot holds for each message, and what an index
//! record carries beside an answer that does not read back into its message (see
//! [`super::stored`]).

use crate::index::message::{
    Action, DeclaredOrcpts, Message, Recipient, RecipientIndex, MAX_DECLARED_ORCPTS,
};
use crate::ingest::state::{Corrupt, Decoder, Encoder};
use crate::protocol::date::Timestamp;
use crate::protocol::secret::Hash;

pub(super) fn put_key(enc: &mut Encoder, envid: &[u8], hash: &Hash) {
    enc.bytes(envid);
    enc.buf.extend_from_slice(hash);
}

pub(super) fn put_message(enc: &mut Encoder, m: &Message) {
    put_key(enc, &m.envid, &m.hash);
    put_message_rest(enc, m);
}

pub(super) fn put_message_rest(enc: &mut Encoder, m: &Message) {
    put_time(enc, &m.arrival);
    match m.timeout {
        None => enc.u8(0),
        Some(t) => {
            enc.u8(1);
            enc.u32(t);
        }
    }
    enc.count(m.headers.len());
    m.headers.iter().for_each(|h| enc.bytes(h));
    enc.count(m.recipients.len());
    m.recipients.iter().for_each(|r| put_recipient(enc, r));
    enc.i64(m.last_event);
    put_orcpts(enc, &m.orcpts);
}

/// The declared ORCPTs: a count (one octet for none), then each RCPT TO address and ORCPT.
pub(super) fn put_orcpts(enc: &mut Encoder, orcpts: &DeclaredOrcpts) {
    enc.varint(orcpts.len() as u64);
    for d in orcpts.iter() {
        enc.bytes(&d.rcpt);
        enc.bytes(&d.original);
    }
}

/// Reads what [`put_orcpts`] wrote into `orcpts`, under the bounds a message keeps to.
pub(super) fn get_orcpts(
    dec: &mut Decoder<'_>,
    orcpts: &mut DeclaredOrcpts,
) -> Result<(), Corrupt> {
    let count = dec.varint()?;
    // Each takes at least eight octets: a corrupt count cannot loop for long.
    if count > MAX_DECLARED_ORCPTS as u64 || count > dec.rest().len() as u64 {
        return Err(Corrupt(format!("{count} declared ORCPTs")));
    }
    for _ in 0..count {
        let (rcpt, original) = (dec.bytes()?, dec.bytes()?);
        if orcpts.insert(rcpt, original) != Ok(true) {
            return Err(Corrupt("a declared ORCPT out of bounds or repeated".into()));
        }
    }
    Ok(())
}

pub(super) fn get_message_rest(
    dec: &mut Decoder<'_>,
    envid: Box<[u8]>,
    hash: Hash,
) -> Result<Message, Corrupt> {
    let arrival = get_time(dec)?;
    let timeout = match dec.u8()? {
        0 => None,
        1 => Some(dec.u32()?),
        t => return Err(Corrupt(format!("bad timeout tag {t}"))),
    };
    let headers = (0..dec.count()?)
        .map(|_| dec.bytes())
        .collect::<Result<_, _>>()?;
    let mut m = Message {
        envid,
        hash,
        arrival,
        timeout,
        headers,
        recipients: Vec::new(),
        last_event: 0,
        lookup: RecipientIndex::default(),
        orcpts: Default::default(),
    };
    for _ in 0..dec.count()? {
        m.update_recipient(get_recipient(dec)?);
    }
    m.last_event = dec.i64()?;
    get_orcpts(dec, &mut m.orcpts)?;
    Ok(m)
}

pub(super) fn put_recipient(enc: &mut Encoder, r: &Recipient) {
    enc.opt_bytes(r.original.as_deref());
    enc.bytes(&r.final_rcpt);
    enc.u8(Action::ALL.iter().position(|a| *a == r.action).unwrap_or(0) as u8);
    enc.bytes(&r.status);
    enc.opt_bytes(r.remote_mta.as_deref());
    enc.opt_bytes(r.diagnostic.as_deref());
    put_opt_time(enc, &r.last_attempt);
    put_opt_time(enc, &r.will_retry_until);
    enc.i64(r.at);
}

pub(super) fn get_recipient(dec: &mut Decoder<'_>) -> Result<Recipient, Corrupt> {
    Ok(Recipient {
        original: dec.opt_bytes()?,
        final_rcpt: dec.bytes()?,
        action: *Action::ALL
            .get(usize::from(dec.u8()?))
            .ok_or_else(|| Corrupt("bad action".into()))?,
        status: dec.bytes()?,
        remote_mta: dec.opt_bytes()?,
        diagnostic: dec.opt_bytes()?,
        last_attempt: get_opt_time(dec)?,
        will_retry_until: get_opt_time(dec)?,
        at: dec.i64()?,
    })
}

fn put_time(enc: &mut Encoder, t: &Timestamp) {
    enc.i64(t.unix);
    enc.i16(t.offset_minutes);
}

fn get_time(dec: &mut Decoder<'_>) -> Result<Timestamp, Corrupt> {
    let t = Timestamp {
        unix: dec.i64()?,
        offset_minutes: dec.i16()?,
    };
    // Found by the state fuzz target: a time near i64::MAX overflowed when rendered.
    if !t.is_plausible() {
        return Err(Corrupt(format!(
            "a time no log line can give ({}, offset {} minutes)",
            t.unix, t.offset_minutes
        )));
    }
    Ok(t)
}

fn put_opt_time(enc: &mut Encoder, t: &Option<Timestamp>) {
    match t {
        None => enc.u8(0),
        Some(t) => {
            enc.u8(1);
            put_time(enc, t);
        }
    }
}

fn get_opt_time(dec: &mut Decoder<'_>) -> Result<Option<Timestamp>, Corrupt> {
    match dec.u8()? {
        0 => Ok(None),
        1 => Ok(Some(get_time(dec)?)),
        t => Err(Corrupt(format!("bad time tag {t}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(arrival: Timestamp) -> Message {
        Message {
            envid: b"e@x".as_slice().into(),
            hash: [7; 20],
            arrival,
            timeout: None,
            headers: Vec::new(),
            recipients: Vec::new(),
            last_event: 0,
            lookup: Default::default(),
            orcpts: Default::default(),
        }
    }

    /// The state fuzz target's first finding: a saved arrival near i64::MAX decoded, and
    /// rendering it overflowed. Such a time is refused as corruption now.
    #[test]
    fn a_time_no_log_line_can_give_is_corrupt() {
        let decode = |arrival| {
            let mut enc = Encoder::default();
            put_message_rest(&mut enc, &message(arrival));
            get_message_rest(
                &mut Decoder::new(&enc.buf),
                b"e@x".as_slice().into(),
                [7; 20],
            )
        };
        let sane = Timestamp {
            unix: 1_000_000_000,
            offset_minutes: -300,
        };
        assert_eq!(decode(sane).unwrap(), message(sane));
        for bad in [
            Timestamp {
                unix: i64::MAX - 1000,
                offset_minutes: 0,
            },
            Timestamp {
                unix: i64::MIN,
                offset_minutes: 0,
            },
            Timestamp {
                unix: 0,
                offset_minutes: 24 * 60,
            },
        ] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
    }

    /// Declared ORCPTs decode only as a message holds them: within the bounds, each address
    /// once.
    #[test]
    fn declared_orcpts_decode_within_their_bounds() {
        let t = Timestamp {
            unix: 1_000_000_000,
            offset_minutes: 0,
        };
        let decode = |m: &Message| {
            let mut enc = Encoder::default();
            put_message_rest(&mut enc, m);
            let mut dec = Decoder::new(&enc.buf);
            get_message_rest(&mut dec, m.envid.clone(), m.hash).map(|back| (back, dec.is_done()))
        };
        let mut m = message(t);
        for i in 0..3 {
            let rcpt = format!("u{i}@x").into_bytes();
            assert_eq!(
                m.orcpts
                    .insert(rcpt.clone().into(), [b"rfc822;", &rcpt[..]].concat().into()),
                Ok(true)
            );
        }
        assert_eq!(decode(&m), Ok((m.clone(), true)));
        let mut enc = Encoder::default();
        put_message_rest(&mut enc, &message(t));
        let empty = enc.buf.len();
        put_message_rest(&mut enc, &m);
        assert_eq!(
            enc.buf.len() - 2 * empty,
            3 * (4 + "u0@x".len() + 4 + "rfc822;u0@x".len()),
            "one octet for none, and the values"
        );
        // The same address twice, and a count past the bound.
        let mut twice = Encoder::default();
        put_message_rest(&mut twice, &message(t));
        twice.buf.pop();
        twice.varint(2);
        for _ in 0..2 {
            twice.bytes(b"a@x");
            twice.bytes(b"rfc822;a@x");
        }
        let mut many = Encoder::default();
        put_message_rest(&mut many, &message(t));
        many.buf.pop();
        many.varint(MAX_DECLARED_ORCPTS as u64 + 1);
        many.buf.extend_from_slice(&[0; 20_000]);
        for bad in [twice.buf, many.buf] {
            let back = get_message_rest(&mut Decoder::new(&bad), b"e@x"[..].into(), [7; 20]);
            assert!(back.is_err());
        }
    }
}
