"""LoginThrottle belongs to omega_web now (omega_web 0001 takes its table and rows): removed from this app's state
only, nothing is dropped."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("dialogues", "0014_dialogue_steps_update_no_index"),
        ("omega_web", "0001_login_throttle"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="LoginThrottle")]),
    ]
