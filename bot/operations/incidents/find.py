"""Which incident, and which person, a request is about."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError

from bot.base.errors import BadInput
from bot.base.plain import one_line
from bot.model.tables import Effect, Incident
from bot.operations.deps import Deps, Operation
from bot.views import blocks
from bot.views.text import parse_user_name, parse_user_ref

MYSELF = frozenset({"me", "myself", "@me"})


class Finder(Operation):
    def __init__(self, deps: Deps):
        super().__init__(deps)

    async def by_id(self, incident_id: int) -> Incident | None:
        return await self.store.incident(incident_id)

    async def by_channel(self, channel_id: str | None) -> Incident | None:
        return await self.store.incident_by_channel(channel_id) if channel_id else None

    async def in_channel(self, channel_id: str | None, team_id: str, user_id: str) -> Incident:
        """The incident whose channel this is, or a private answer naming where to go."""
        incident = await self.by_channel(channel_id)
        if incident is not None:
            await self.require_member(incident, user_id)
            return incident
        open_ = [i for i in await self.store.open_incidents(team_id) if i.channel_id]
        public = [i for i in open_ if not i.private][:5]
        if not public:
            raise BadInput(
                "Run this in an incident's channel. There is no open incident; "
                "`/incident declare` starts one."
            )
        where = ", ".join(f"<#{i.channel_id}> ({i.ref})" for i in public)
        raise BadInput(f"Run this in the incident's channel: {where}.")

    async def by_number(self, number: int, user_id: str) -> Incident:
        """INC-<number>, named by a person anywhere; a private one only for members of its
        channel (and it is not revealed to others)."""
        incident = await self.store.incident_by_number(self.directory.team_id, number)
        if incident is None or not await self.may_see(incident, user_id):
            raise BadInput(f"There is no INC-{number} you can see. `/incident list` shows them.")
        return incident

    async def may_see(self, incident: Incident, user_id: str) -> bool:
        """Everyone sees a public incident; a private one, the members of its channel."""
        if not incident.private:
            return True
        if not incident.channel_id:
            return incident.declared_by == user_id
        try:
            return user_id in await self.directory.members(incident.channel_id)
        except SlackApiError:
            return False  # when in doubt, a private incident stays hidden

    async def for_control(
        self, value: str | None, channel_id: str | None, user_id: str
    ) -> Incident:
        """The incident a button or menu belongs to: its value, else the channel it is in."""
        if value and value.isdigit():
            incident = await self.by_id(int(value))
        else:
            incident = await self.by_channel(channel_id)
        if incident is None:
            raise BadInput("This control belongs to an incident the bot no longer knows.")
        await self.require_member(incident, user_id)
        return incident

    async def for_form(self, incident_id: int | None, user_id: str) -> Incident:
        incident = await self.by_id(incident_id) if incident_id is not None else None
        if incident is None:
            raise BadInput("That form no longer matches an incident.")
        await self.require_member(incident, user_id)
        return incident

    async def require_member(self, incident: Incident, user_id: str) -> None:
        """Defence in depth: Slack shows a private incident's channel, card and forms to
        its members only, and the bot checks again before any read or change."""
        if not await self.may_see(incident, user_id):
            raise BadInput(
                f"{incident.ref} is private: only members of its channel can see or change it."
            )

    async def visible_open(self, team_id: str, user_id: str) -> list[blocks.IncidentState]:
        """Open incidents, private ones only for members of their channel."""
        return [
            await self.surfaces.state(incident.pk)
            for incident in await self.store.open_incidents(team_id)
            if await self.may_see(incident, user_id)
        ]

    async def status(self, incident: Incident) -> tuple[blocks.IncidentState, str | None]:
        """The incident as stored, and the summary of its latest update."""
        state = await self.surfaces.state(incident.pk)
        latest = await self.store.latest_update(incident.pk)
        return state, latest.summary if latest else None

    async def effects(self, incident: Incident) -> list[Effect]:
        """What the incident's changes asked of systems outside the bot, and how it went."""
        return await self.outgoing.effects.of_incident(incident.pk)

    async def person(self, token: str, actor: str) -> str:
        """`me`, `<@U123|bob>`, `U123` or `@bob` -> a user id; BadInput otherwise."""
        token = token.strip()
        if token.lower() in MYSELF:
            return actor
        user_id = parse_user_ref(token)
        if user_id is None:
            name = parse_user_name(token) or (token.lower() if token.isidentifier() else None)
            if name is None:
                raise BadInput(f"`{one_line(token, 40)}` is not a person. Mention them: `@name`.")
            user_id = await self.directory.id_by_name(name)
            if user_id is None:
                raise BadInput(f"Nobody called `@{one_line(name, 40)}` is in this workspace.")
        await self.directory.check_person(user_id)
        return user_id

    async def check_person(self, user_id: str, what: str) -> None:
        await self.directory.check_person(user_id, what)
