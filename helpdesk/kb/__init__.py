"""The knowledge base: articles drafted from tickets, personal data flagged, published
by a lead, searched with the desk's full-text machinery, suggested to customers in
acknowledgements (deflection), exported and imported as Markdown; post-mortems.

Imports the base, config, mail (reply text), store; never web or outgoing (they call
this package).
"""
