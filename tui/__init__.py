"""The Textual TUI: a client of the service's control socket."""
