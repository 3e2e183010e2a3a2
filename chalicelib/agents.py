"""Agents: created, read, listed, changed and deleted by their owner only."""

from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from chalicelib import aws, collections, usage, validation
from chalicelib.clock import new_id, now_iso
from chalicelib.errors import Conflict, Invalid, NotFound
from chalicelib.models import Agent, conditional
from chalicelib.pagination import query_page


def create(user_id: str, body: dict[str, Any]) -> Agent:
    if "name" not in body:
        raise Invalid("'name' is required.", field="name")
    fields = validation.agent_fields(body, validation.AGENT_CONFIG_DEFAULTS)
    if "config" in fields:
        collections.check_agent_collection(user_id, fields["config"])
    stamp = now_iso()
    agent = Agent(
        new_id(),
        user_id=user_id,
        name=fields["name"],
        description=fields.get("description", ""),
        config=fields.get("config", dict(validation.AGENT_CONFIG_DEFAULTS)),
        created_at=stamp,
        updated_at=stamp,
    )
    name = agent.config.get("collection")
    # A new uuid never collides: a refusal here is the collection's delete winning the race.
    refused = collections.no_collection(name) if name else None
    with (
        usage.held(user_id, "agents"),
        conditional(refused),
        TransactWrite(connection=aws.dynamodb()) as transaction,
    ):
        transaction.save(agent, condition=Agent.agent_id.does_not_exist())
        collections.record_agent(transaction, user_id, name, agent.agent_id)
    return agent


def get(user_id: str, agent_id: str) -> Agent:
    """The caller's agent; another user's answers exactly as a missing one."""
    agent_id = validation.uuid_param(agent_id, "agent_id")
    try:
        agent = Agent.get(agent_id)
    except DoesNotExist:
        agent = None
    if agent is None or agent.user_id != user_id:
        raise NotFound(f"Agent {agent_id} not found.")
    return agent


def list_page(user_id: str, limit: int, token: str | None) -> tuple[list[Agent], str | None]:
    return query_page(Agent.by_owner, "user_id", user_id, "agent_id", limit, token)


def update(user_id: str, agent_id: str, body: dict[str, Any]) -> Agent:
    agent = get(user_id, agent_id)
    fields = validation.agent_fields(body, agent.config)
    if not fields:
        raise Invalid("Send at least one of 'name', 'description', 'config'.")
    before = agent.config.get("collection")
    after = fields["config"].get("collection") if "config" in fields else before
    if after != before:  # one it keeps is checked by record_agent's condition in the write
        collections.check_agent_collection(user_id, fields["config"])
    stamp = now_iso()
    actions = [getattr(Agent, name).set(value) for name, value in fields.items()]
    actions.append(Agent.updated_at.set(stamp))
    # The config was merged over the one read: a change written meanwhile (or a delete) must not be lost.
    unchanged = (Agent.user_id == user_id) & (Agent.updated_at == agent.updated_at)
    try:
        changed = Conflict(f"Agent {agent.agent_id} changed meanwhile; read it again and retry.")
        with conditional(changed), TransactWrite(connection=aws.dynamodb()) as transaction:
            transaction.update(agent, actions=actions, condition=unchanged)
            if "config" in fields:
                collections.record_agent(transaction, user_id, after, agent.agent_id)
                if before != after:
                    collections.forget_agent(transaction, user_id, before, agent.agent_id)
    except Conflict:
        if after is not None and collections.find_id(user_id, after) is None:
            raise collections.no_collection(after) from None  # its delete won the race
        raise
    for name, value in fields.items():
        setattr(agent, name, value)
    agent.updated_at = stamp
    return agent


def delete(user_id: str, agent_id: str) -> None:
    agent = get(user_id, agent_id)
    with conditional(NotFound(f"Agent {agent.agent_id} not found.")), TransactWrite(
        connection=aws.dynamodb()
    ) as transaction:
        transaction.delete(agent, condition=Agent.user_id == user_id)
        collections.forget_agent(transaction, user_id, agent.config.get("collection"), agent.agent_id)
    # Only the delete that removed the agent gets here: a second one is NotFound above.
    usage.release(user_id, "agents")
