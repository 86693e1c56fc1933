"""The route table: every operation of the API, once. app.py serves it, openapi.py
documents it."""

from __future__ import annotations

from helpdesk.web.api import kb, people, read, schemas, write
from helpdesk.web.api.table import Operation

TICKET = "/tickets/{number}"

OPERATIONS = [
    Operation("GET", "/tickets", read.list_tickets, "List tickets", schemas.TicketPage,
              query=schemas.TicketQuery,
              description="The desk's views and filters (open tickets unless `status` says "
              "otherwise; `any` is every status), sorted like the desk, paged by cursor."),
    Operation("POST", "/tickets", write.create_ticket, "Create a ticket for a customer",
              schemas.Accepted, scope="write", body=schemas.TicketCreate, status=202,
              description="Made into the customer's mail and queued for the pipeline "
              "(rules, deduplication, acknowledgement apply); poll `poll` for the ticket."),
    Operation("GET", "/submissions/{key}", write.submission, "Where a created ticket is",
              schemas.Submission),
    Operation("GET", TICKET, read.show_ticket, "Show a ticket", schemas.Ticket, etag=True,
              description="Answers with an ETag: send it as If-Match with a change."),
    Operation("PATCH", TICKET, write.update_ticket, "Change fields", schemas.Applied,
              scope="write", body=schemas.TicketUpdate, if_match=True, etag=True,
              description="Each field becomes its #command, applied as the token's agent."),
    Operation("POST", TICKET + "/reply", write.reply, "Reply to the customer",
              schemas.Applied, scope="write", body=schemas.ReplyBody, if_match=True,
              etag=True),
    Operation("POST", TICKET + "/note", write.note, "Add an internal note", schemas.Applied,
              scope="write", body=schemas.NoteBody, if_match=True, etag=True),
    Operation("POST", TICKET + "/commands", write.run_commands, "Run #commands",
              schemas.Applied, scope="write", body=schemas.CommandsBody, if_match=True,
              etag=True, description="Any command of the registry, as at the top of an "
              "agent's mail reply; all are checked, then all or none applied."),
    Operation("GET", TICKET + "/messages", read.list_messages, "List a ticket's messages",
              schemas.MessagePage, query=schemas.PageQuery),
    Operation("GET", TICKET + "/attachments/{aid}", read.attachment, "Download an attachment",
              None, description="Always as a download (Content-Disposition: attachment), "
              "with X-Content-Type-Options: nosniff."),
    Operation("GET", "/search", read.search_messages, "Search messages", schemas.SearchPage,
              query=schemas.SearchQuery),
    Operation("GET", "/queues", read.list_queues, "List the queues you may see",
              schemas.QueueList),
    Operation("GET", "/commands", read.list_commands, "List the #commands", schemas.CommandList),
    Operation("GET", "/contacts", people.find_contact, "Find a contact by address",
              schemas.ContactOut, query=schemas.ContactQuery),
    Operation("GET", "/contacts/{number}", people.show_contact, "Show a contact",
              schemas.ContactOut),
    Operation("GET", "/kb/articles", kb.list_articles, "List knowledge-base articles",
              schemas.ArticleList, query=schemas.ArticleQuery,
              description="Published articles, and the drafts of tickets you may see; `q` "
              "searches the published ones. Write them with #kb and #publish (/commands)."),
    Operation("GET", "/kb/articles/{number}", kb.show_article, "Show an article",
              schemas.ArticleOut),
    Operation("GET", "/stats", people.show_stats, "The helpdesk's figures (leads, admins)",
              schemas.Stats, query=schemas.StatsQuery,
              description="What `helpdesk stats --json` prints."),
]
