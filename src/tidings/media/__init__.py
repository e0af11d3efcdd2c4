"""Media: where attachment bytes are stored, the limits files are checked against, inbound
downloads (the media worker) and what agents' browsers are served."""
