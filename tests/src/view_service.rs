//! The interop service again, with the semantics of [`crate::service`], implemented on the
//! generated `InteropService` trait whose handlers take zero-copy views of their requests
//! (`build.rs` asks for `request_views`). Every handler also checks that the strings and bytes
//! it reads point into the request buffer, and fails with `internal` if they do not, so a
//! test passing against this router proves the views really borrow.

use buffa::MessageView as _;
use volley::{Error, Request, Response, ResponseStream, Router, Streaming, View};

use crate::proto::volley::interop::v1::__buffa::view::EchoRequestView;
use crate::proto::volley::interop::v1::{
    EchoRequest, EchoResponse, InteropService, register_interop_service,
};
use crate::service::{
    Context, fail, install_type_registry, millis, numbered_responses, respond, spec_error,
};

/// A router serving the interop service through view handlers (see the module docs).
pub fn interop_view_router() -> Router {
    install_type_registry();
    register_interop_service(Router::new(), ViewInterop)
}

struct ViewInterop;

/// Fails unless the non-empty `field` lies inside `buffer`.
fn borrowed(buffer: &[u8], field: &[u8]) -> Result<(), Error> {
    let inside = field.is_empty()
        || buffer.as_ptr_range().contains(&field.as_ptr()) && field.len() <= buffer.len();
    if inside {
        Ok(())
    } else {
        Err(Error::internal("a view field does not borrow the request"))
    }
}

/// The view of `message`, after checking its text and payload are borrowed.
fn checked(message: &View<EchoRequest>) -> Result<&EchoRequestView<'_>, Error> {
    let view = message.view();
    borrowed(message.bytes(), view.text.as_bytes())?;
    borrowed(message.bytes(), view.payload)?;
    Ok(view)
}

/// The error the request asks for. Only this rare path copies out of the view.
fn requested_error(view: &EchoRequestView<'_>) -> Result<Option<Error>, Error> {
    match view.error.as_option() {
        None => Ok(None),
        Some(spec) => {
            let spec = spec
                .to_owned_message()
                .map_err(|e| Error::from_source(volley::Code::Internal, e))?;
            Ok(spec_error(&spec))
        }
    }
}

fn payload_for(view: &EchoRequestView<'_>) -> Vec<u8> {
    if view.response_size > 0 {
        vec![b'x'; usize::try_from(view.response_size).unwrap_or(0)]
    } else {
        view.payload.to_vec()
    }
}

impl InteropService for ViewInterop {
    async fn echo(
        &self,
        request: Request<View<EchoRequest>>,
    ) -> Result<Response<EchoResponse>, Error> {
        let ctx = Context::of(&request);
        let view = checked(request.message())?;
        if view.delay_ms > 0 {
            tokio::time::sleep(millis(view.delay_ms)).await;
        }
        if let Some(err) = requested_error(view)? {
            return Err(fail(err, request.headers()));
        }
        let response = ctx.response(view.text.to_string(), 0, payload_for(view), 1);
        Ok(respond(response, request.headers()))
    }

    async fn server_stream(
        &self,
        request: Request<View<EchoRequest>>,
    ) -> Result<Response<ResponseStream<EchoResponse>>, Error> {
        let ctx = Context::of(&request);
        // The view moves into the response stream: it owns its buffer, so it is `'static`.
        let message = request.message().clone();
        let view = checked(&message)?;
        let error = requested_error(view)?;
        let (count, fail_after, delay) = (view.count, view.fail_after, millis(view.delay_ms));
        let stream = numbered_responses(count, fail_after, error, delay, move |index| {
            let view = message.view();
            ctx.response(view.text.to_string(), index, payload_for(view), 1)
        });
        Ok(respond(stream, request.headers()))
    }

    async fn client_stream(
        &self,
        mut request: Request<Streaming<View<EchoRequest>>>,
    ) -> Result<Response<EchoResponse>, Error> {
        let ctx = Context::of(&request);
        let headers = request.headers().clone();
        let mut texts = Vec::new();
        let mut payload = Vec::new();
        let mut received = 0;
        let mut error = None;
        while let Some(message) = request.message_mut().message().await? {
            let view = checked(&message)?;
            received += 1;
            if view.delay_ms > 0 {
                tokio::time::sleep(millis(view.delay_ms)).await;
            }
            if error.is_none() {
                error = requested_error(view)?;
            }
            payload.extend_from_slice(&payload_for(view));
            texts.push(view.text.to_string());
        }
        if let Some(err) = error {
            return Err(fail(err, &headers));
        }
        Ok(respond(
            ctx.response(texts.join(" "), 0, payload, received),
            &headers,
        ))
    }

    async fn bidi(
        &self,
        request: Request<Streaming<View<EchoRequest>>>,
    ) -> Result<Response<ResponseStream<EchoResponse>>, Error> {
        let ctx = Context::of(&request);
        let headers = request.headers().clone();
        let requests = request.into_message();
        let responses = futures_util::stream::unfold(Some((requests, 0)), move |state| {
            let ctx = ctx.clone();
            async move {
                let (mut requests, index) = state?;
                let message = match requests.message().await {
                    Ok(Some(message)) => message,
                    Ok(None) => return None,
                    Err(err) => return Some((Err(err), None)),
                };
                let answer = async {
                    let view = checked(&message)?;
                    if view.delay_ms > 0 {
                        tokio::time::sleep(millis(view.delay_ms)).await;
                    }
                    if let Some(err) = requested_error(view)? {
                        return Err(err);
                    }
                    Ok(ctx.response(view.text.to_string(), index, payload_for(view), index + 1))
                };
                match answer.await {
                    Ok(response) => Some((Ok(response), Some((requests, index + 1)))),
                    Err(err) => Some((Err(err), None)),
                }
            }
        });
        let stream: ResponseStream<EchoResponse> = Box::pin(responses);
        Ok(respond(stream, &headers))
    }
}
