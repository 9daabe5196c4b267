"""The reference device agent. It speaks DDI to a server and never imports the server."""
