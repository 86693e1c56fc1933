"""The feedback survey after closure: the step that sends it and reads ratings
(steps, a scheduler step built on schedule.runtime) and its public page (web).

May import: the base, mail, store, outgoing, schedule.runtime.
"""
