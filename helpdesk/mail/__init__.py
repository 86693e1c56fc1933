"""The mail stage: bytes in, a ParsedMail out (parse, MIME parts and text, raw head,
reply text, authentication results, reply tokens), and the loop classification
(automatic), made once per mail and passed down.

May import: the base and the spool's Envelope; automatic also reads store.queries
(whether we wrote to this sender), the one read of the store before threading.
"""
