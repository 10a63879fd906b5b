"""What a form says next to a field it refuses: the request form (bot/forms.py,
bot/listeners/submissions.py) and the thread's small forms (bot/listeners/thread_modals.py).

The rules' own messages (core/validation.py: a bad account id, CIDR, tag…) are shown as the rules word
them; the texts here are the forms' own: a missing choice, an out-of-date form, the store being down.
"""

from __future__ import annotations

# -- the request form

REQUIRED_MESSAGE = {
    "profile": "Choose an AWS profile.",
    "account_situation": "Say whether the account is brand new or already has resources.",
    "size": "Choose a setup size.",
    "region": "Choose a region.",
}
FIELD_REQUIRED = "This field is required."
CHOOSE_OFFERED = "Choose one of the offered options."
INVALID_VALUE = "Invalid value."
PROFILE_NOT_OFFERED = "You may not deploy with that AWS profile; choose one of the offered profiles."
REQUEST_FORM_OUT_OF_DATE = "This form is out of date; open a new one."
REQUEST_STORE_DOWN = (
    "The bot cannot reach its store right now; nothing was saved. "
    "Your values are still here — submit again in a minute."
)


def too_long(length: int) -> str:
    return f"That is {length:,} characters; the limit is far lower."


# -- the thread's forms (reject reason, missing values, edit values)

THREAD_FORM_OUT_OF_DATE = "This form is out of date; close it."
THREAD_FORM_STORE_DOWN = (
    "The bot cannot reach its store right now; nothing was saved. Submit again in a minute."
)
ONLY_STEERERS_GIVE_VALUES = "Only the requester or an approver can give these values."
ONLY_STEERERS_EDIT_VALUES = "Only the requester or an approver can edit values."
INVALID_VALUES = "Invalid values."
