"""Image understanding: image readers that describe an image for a language model without vision, and
the wire format that sends images to one with vision."""
