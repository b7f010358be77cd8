"""Users, groups and group parameters: the admin steps of the seed, and user selection."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import UsageError
from .model import GroupMember, GroupParam, User, UserGroup

SYNC_PARAM = "ews_synccontacts"


def find_user(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(User.email_key == email.strip().lower()))


def require_user(session: Session, email: str) -> User:
    user = find_user(session, email)
    if user is None:
        raise UsageError(f"no user with e-mail {email}",
                         f"add it with 'ucware-contactsync users add {email}'")
    return user


def add_user(session: Session, email: str, name: str = "") -> User:
    if "@" not in email:
        raise UsageError(f"{email!r} is not an e-mail address",
                         "give the user's primary SMTP address, e.g. anna.berg@example.de")
    if find_user(session, email) is not None:
        raise UsageError(f"a user with e-mail {email} exists already")
    user = User(email=email, name=name)
    session.add(user)
    session.flush()
    return user


def find_group(session: Session, name: str) -> UserGroup | None:
    return session.scalar(select(UserGroup).where(UserGroup.name == name))


def require_group(session: Session, name: str) -> UserGroup:
    group = find_group(session, name)
    if group is None:
        raise UsageError(f"no group named {name!r}",
                         f"add it with 'ucware-contactsync groups add {name}'")
    return group


def add_group(session: Session, name: str) -> UserGroup:
    if not name.strip():
        raise UsageError("a group needs a name")
    if find_group(session, name) is not None:
        raise UsageError(f"a group named {name!r} exists already")
    group = UserGroup(name=name)
    session.add(group)
    session.flush()
    return group


def set_param(session: Session, group_name: str, param: str, value: str) -> None:
    group = require_group(session, group_name)
    row = session.scalar(
        select(GroupParam).where(GroupParam.group_id == group.id, GroupParam.name == param)
    )
    if row is None:
        session.add(GroupParam(group=group, name=param, value=value))
    else:
        row.value = value


def add_member(session: Session, group_name: str, email: str) -> bool:
    """Add a user to a group; False if already a member."""
    group = require_group(session, group_name)
    user = require_user(session, email)
    if session.get(GroupMember, (group.id, user.id)) is not None:
        return False
    session.add(GroupMember(group_id=group.id, user_id=user.id))
    return True


def selected_users(session: Session) -> list[User]:
    """Members of any group whose ``ews_synccontacts`` is true (case-insensitive), by e-mail."""
    q = (
        select(User)
        .join(GroupMember, GroupMember.user_id == User.id)
        .join(GroupParam, GroupParam.group_id == GroupMember.group_id)
        .where(GroupParam.name == SYNC_PARAM, func.lower(func.trim(GroupParam.value)) == "true")
        .distinct()
        .order_by(User.id)
    )
    return list(session.scalars(q))
