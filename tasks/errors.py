"""Errors of the tasks package.

TasksError
 ├── UnknownArtifact (KeyError)   no model or dataset under that hash in the store
 ├── IntegrityError               stored files no longer hash to their name (tampered)
 ├── InvalidJob (ValueError)      a job spec that fails validation
 ├── JobFailed                    the job raised, or Ray could not run it
 ├── VerificationFailed           a result that does not check out (shape, hash, values)
 ├── RequesterMismatch (PermissionError)  a job run in another agent's name (tasks.executor)
 └── AccessDenied (PermissionError)  a dataset use its vault refuses (tasks.vault)
      ├── UnpaidUse               no paid deal covers this use
      └── ForgedRequest           a vault request not signed by its requester (Ray)
"""

from __future__ import annotations


class TasksError(Exception):
    """Root of every error raised by the tasks package."""


class UnknownArtifact(TasksError, KeyError):
    """The content store holds nothing under that hash."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IntegrityError(TasksError):
    """An artifact's files no longer hash to the digest it is stored under."""


class InvalidJob(TasksError, ValueError):
    """A job spec failed validation; the message names the field."""


class JobFailed(TasksError):
    """Running the job failed; the message carries the cause."""


class VerificationFailed(TasksError):
    """A job result failed the buyer's checks."""
