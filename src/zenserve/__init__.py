"""zenserve: the zen protocol of chapter 7, served by every architecture, measured and deployed."""

__version__ = "0.1.0"
