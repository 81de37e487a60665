//! One length-prefixed, size-bounded codec for every staffpass
//! request-response protocol.
//!
//! A frame is a 4-byte big-endian length and that many bytes of canonical
//! (postcard) encoding. A frame longer than the message type's bound is
//! refused before it is read; a frame that does not decode is refused. Both
//! surface as `io::ErrorKind::InvalidData`, which makes libp2p reset the
//! stream: the node stays up and keeps serving everyone else.

use std::io;
use std::marker::PhantomData;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use staffpass_protocol::encoding;
use staffpass_protocol::wire::{exchange, roster};

/// A message with a size bound and a canonical encoding.
pub trait Message: Sized + Send + 'static {
    /// Largest encoded size accepted.
    const MAX: usize;
    /// Canonical bytes.
    fn encode(&self) -> Vec<u8>;
    /// Decodes within [`Self::MAX`].
    fn decode(bytes: &[u8]) -> Result<Self, encoding::Error>;
}

macro_rules! message {
    ($ty:ty, $max:expr) => {
        impl Message for $ty {
            const MAX: usize = $max;
            fn encode(&self) -> Vec<u8> {
                <$ty>::encode(self)
            }
            fn decode(bytes: &[u8]) -> Result<Self, encoding::Error> {
                <$ty>::decode(bytes)
            }
        }
    };
}

message!(exchange::Request, exchange::MAX_REQUEST);
message!(exchange::Response, exchange::MAX_RESPONSE);
message!(roster::Request, roster::MAX_REQUEST);
message!(roster::Response, roster::MAX_RESPONSE);

/// The codec of a protocol whose requests are `Req` and responses `Resp`.
pub struct Codec<Req, Resp>(PhantomData<fn() -> (Req, Resp)>);

impl<Req, Resp> Default for Codec<Req, Resp> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<Req, Resp> Clone for Codec<Req, Resp> {
    fn clone(&self) -> Self {
        Codec(PhantomData)
    }
}

/// Reads one frame of at most `max` bytes.
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(io::Error::new(io::ErrorKind::InvalidData, encoding::Error::TooLarge { len, max }.to_string()));
    }
    let mut buf = vec![0u8; len];
    io.read_exact(&mut buf).await?;
    Ok(buf)
}

/// Writes one frame.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    io.write_all(&len.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

async fn read_message<M: Message, T: AsyncRead + Unpin + Send>(io: &mut T) -> io::Result<M> {
    let bytes = read_frame(io, M::MAX).await?;
    M::decode(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

async fn write_message<M: Message, T: AsyncWrite + Unpin + Send>(io: &mut T, m: M) -> io::Result<()> {
    let bytes = m.encode();
    if bytes.len() > M::MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            encoding::Error::TooLarge { len: bytes.len(), max: M::MAX }.to_string(),
        ));
    }
    write_frame(io, &bytes).await
}

impl<Req: Message, Resp: Message> libp2p::request_response::Codec for Codec<Req, Resp> {
    type Protocol = StreamProtocol;
    type Request = Req;
    type Response = Resp;

    async fn read_request<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Req> {
        read_message(io).await
    }

    async fn read_response<T: AsyncRead + Unpin + Send>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Resp> {
        read_message(io).await
    }

    async fn write_request<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Req,
    ) -> io::Result<()> {
        write_message(io, req).await
    }

    async fn write_response<T: AsyncWrite + Unpin + Send>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Resp,
    ) -> io::Result<()> {
        write_message(io, res).await
    }
}

/// The `/staffpass/exchange/1` codec.
pub type ExchangeCodec = Codec<exchange::Request, exchange::Response>;
/// The `/staffpass/roster/1` codec.
pub type RosterCodec = Codec<roster::Request, roster::Response>;

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    #[tokio::test]
    async fn oversized_frames_are_refused_before_reading() {
        let mut bytes = ((roster::MAX_REQUEST + 1) as u32).to_be_bytes().to_vec();
        bytes.extend(std::iter::repeat_n(0u8, 16));
        let err = read_message::<roster::Request, _>(&mut Cursor::new(bytes)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("too large"), "{err}");
    }

    #[tokio::test]
    async fn garbage_is_invalid_data_and_good_frames_round_trip() {
        let mut garbage = 5u32.to_be_bytes().to_vec();
        garbage.extend([0xff; 5]);
        let err = read_message::<roster::Request, _>(&mut Cursor::new(garbage)).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);

        let req = roster::Request::Heads(vec![]);
        let mut buf = Cursor::new(Vec::new());
        write_message(&mut buf, req.clone()).await.unwrap();
        let back = read_message::<roster::Request, _>(&mut Cursor::new(buf.into_inner())).await.unwrap();
        assert_eq!(back, req);
    }
}
