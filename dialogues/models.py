"""Every model of the dialogues app, for Django to find: each area keeps its own in `<area>/models.py`.

Code inside the app imports models from their area (`dialogues.runs.models`), never from here.
"""

from dialogues.annotation.models import (
    Adjudication,
    Correction,
    Decision,
    DialogueAnnotation,
    Label,
    TurnAnnotation,
)
from dialogues.corpora.models import Corpus, CorpusVersion, VersionStatus
from dialogues.library.models import (
    AgentProfile,
    ImportFile,
    ImportJob,
    ImportKind,
    ImportStatus,
    Relationship,
    RelationshipType,
    Scenario,
    Split,
    Task,
)
from dialogues.prompt_sets.models import PromptSet
from dialogues.runs.models import (
    Branch,
    Dialogue,
    DialogueStatus,
    Instance,
    LLMCall,
    Run,
    RunKind,
    RunStatus,
    Setting,
    StepRating,
    Turn,
)

__all__ = [
    "Adjudication",
    "AgentProfile",
    "Branch",
    "Corpus",
    "CorpusVersion",
    "Correction",
    "Decision",
    "Dialogue",
    "DialogueAnnotation",
    "DialogueStatus",
    "ImportFile",
    "ImportJob",
    "ImportKind",
    "ImportStatus",
    "Instance",
    "LLMCall",
    "Label",
    "PromptSet",
    "Relationship",
    "RelationshipType",
    "Run",
    "RunKind",
    "RunStatus",
    "Scenario",
    "Setting",
    "Split",
    "StepRating",
    "Task",
    "Turn",
    "TurnAnnotation",
    "VersionStatus",
]
