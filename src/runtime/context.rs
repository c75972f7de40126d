//! The handler's view of its connection.

/// Passed to every [`Handler`](crate::Handler) callback.
#[derive(Debug)]
pub struct Context<'a> {
    _p: std::marker::PhantomData<&'a ()>,
}

impl Context<'_> {
    /// Queue a message.
    pub fn send(&mut self, msg: impl Into<crate::Message>) -> Result<(), crate::Error> {
        let _ = msg.into();
        todo!()
    }
}
