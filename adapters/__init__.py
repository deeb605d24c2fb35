"""Platform adapters: convert platform events into Turns and render ReplyStreams."""
