//! Response bodies: reading one up to a bound without losing it, and
//! running a handler so that its panic becomes a value.

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};

use ::axum::body::{Body, Bytes};
use ::axum::http::HeaderMap;
use http_body::{Body as _, Frame};

/// A body read up to `limit` bytes: the bytes, or (over the limit, or
/// with trailers) a body that replays what was read, then the rest.
pub(super) enum Collected {
    Whole(Bytes),
    Passed(Body),
}

pub(super) async fn collect(mut body: Body, limit: usize) -> Collected {
    let mut read: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => break,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    size += data.len();
                    read.push(data);
                    if size > limit {
                        return Collected::Passed(Body::new(Replay { read, rest: body }));
                    }
                }
                Err(frame) => {
                    let Ok(trailers) = frame.into_trailers() else {
                        continue;
                    };
                    let rest = Body::new(Trailers(Some(trailers)));
                    return Collected::Passed(Body::new(Replay { read, rest }));
                }
            },
            Some(Err(e)) => {
                // The error reaches the client as the body's error.
                return Collected::Passed(Body::new(Replay {
                    read,
                    rest: Body::new(Failed(Some(e))),
                }));
            }
        }
    }
    Collected::Whole(match read.len() {
        0 => Bytes::new(),
        1 => read.pop().unwrap_or_default(),
        _ => Bytes::from(read.concat()),
    })
}

/// The frames read so far, then `rest`.
struct Replay {
    read: Vec<Bytes>,
    rest: Body,
}

impl http_body::Body for Replay {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.read.is_empty() {
            let data = self.read.remove(0);
            if !data.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }
}

/// A body of one trailers frame.
struct Trailers(Option<HeaderMap>);

impl http_body::Body for Trailers {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A body that fails with the error the handler's body failed with.
struct Failed(Option<::axum::Error>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = ::axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Ready(self.0.take().map(Err))
    }
}

pin_project_lite::pin_project! {
    /// A future whose panic is returned as `Err(payload)`.
    pub(super) struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

impl<F> CatchPanic<F> {
    pub(super) fn new(inner: F) -> Self {
        CatchPanic { inner }
    }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(out)) => Poll::Ready(Ok(out)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}
