"""Every step of a dialogue in flight updates its row (the lease, the counters). The lease's expiry was indexed
twice, so each of those updates wrote a new entry in every index of the table (17 on PostgreSQL). Without an
indexed column changing, PostgreSQL updates the row in place on its page (a HOT update) when the page has room:
the table keeps a third of each page free for that. The reconciler finds running dialogues by status."""

from django.db import migrations, models

FILLFACTOR = 70


def _fillfactor(value: int):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            table = schema_editor.quote_name(apps.get_model("dialogues", "Dialogue")._meta.db_table)
            schema_editor.execute(f"ALTER TABLE {table} SET (fillfactor = {int(value)})")

    return apply


class Migration(migrations.Migration):
    dependencies = [
        ("dialogues", "0013_run_tokens_counted_from_dialogues"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="dialogue",
            name="dialogues_d_status_52e070_idx",
        ),
        migrations.AlterField(
            model_name="dialogue",
            name="lease_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(_fillfactor(FILLFACTOR), _fillfactor(100)),
    ]
