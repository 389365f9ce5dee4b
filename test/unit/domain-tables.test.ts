import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IMAGE_CONTAINER_FIELDS,
  PHASES,
  SOURCE_TABLES,
  SOURCE_TABLE_NAMES,
  requiredLayoutFields,
  tablesForPhase,
} from '../../src/domain/tables';

describe('table catalogue', () => {
  test('phases run in the documented order', () => {
    assert.deepEqual(
      [...PHASES],
      ['backup', 'delete', 'patients', 'appointments', 'notes', 'referrers', 'documents', 'images', 'validation'],
    );
  });

  test('each phase reads its tables, parents first', () => {
    const names = (p: (typeof PHASES)[number]) => tablesForPhase(p).map((t) => t.name);
    assert.deepEqual(names('patients'), ['API_Clinic_Name', 'API_Contacts', 'API_Contact_Details']);
    assert.deepEqual(names('appointments'), ['API_event']);
    assert.deepEqual(names('notes'), ['API_Notes', 'API_Messages']);
    assert.deepEqual(names('referrers'), [
      'API_Company',
      'API_Referrer',
      'API_ContactToReferrer',
      'API_ReferrerToCompany_Join',
    ]);
    assert.deepEqual(names('documents'), ['API_Docs']);
    assert.deepEqual(names('images'), ['API_Images']);
    assert.deepEqual(names('backup'), []);
  });

  test('layout and OData names equal the table name and every table is keyed by id', () => {
    for (const name of SOURCE_TABLE_NAMES) {
      const t = SOURCE_TABLES[name];
      assert.equal(t.layout, name);
      assert.equal(t.odataTable, name);
      assert.equal(t.idField, 'id');
      assert.ok(t.requiredFields.includes('id'), name);
    }
  });

  test('SMS fields are the real ones the earlier scripts missed', () => {
    assert.deepEqual(
      [...SOURCE_TABLES.API_Messages.requiredFields],
      ['id', '_kf_ContactID', 'MessageBody', 'RecipientPhoneMobile', 'SentTimestamp', 'MessageStatus'],
    );
  });

  test('the image containers are required in waterfall order and marked as containers', () => {
    assert.deepEqual(
      [...IMAGE_CONTAINER_FIELDS],
      ['image_Full', 'image_Ex_large', 'image_large', 'image_medium', 'image_small'],
    );
    assert.deepEqual([...SOURCE_TABLES.API_Images.containerFields], [...IMAGE_CONTAINER_FIELDS]);
    assert.deepEqual([...SOURCE_TABLES.API_Docs.containerFields], ['Doc']);
  });

  test('the pre-flight map lists every layout', () => {
    const m = requiredLayoutFields();
    assert.equal(m.size, 12);
    assert.ok(m.get('API_ContactToReferrer')?.includes('id_Perscriber'));
    assert.ok(m.get('API_Contact_Details')?.includes('post code'));
  });
});
