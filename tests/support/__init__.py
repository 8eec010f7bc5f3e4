"""What many test directories share: the one local HTTP receiver (`http_receiver.py`)."""
